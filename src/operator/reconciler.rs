//! The reconcile of one watch: a [`WatchReconciler`] gathers the watch's inputs, asks the
//! schedule whether to poll and the status logic what to show, and applies the answer (one
//! upstream poll at most, one status write at most, the events the change deserves).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::api::{PoolCounts, PoolStatisticsWatch, PoolStatisticsWatchStatus};
use crate::modelarts::PoolStatistics;

use super::background::{Finished, PollJob, RunningPoll, StartedFor};
use super::context::Context;
use super::failure::{Failure, unusable_marker};
use super::memory::{MemoryLease, StalledOnSecret, WatchKey, WatchMemory};
use super::metrics::WatchLabels;
use super::poll::{Details, Poll};
use super::schedule::{self, Decision, Jitter, PollReason};
use super::status::{self, Notice, Outcome, Severity};
use super::target::{CredentialSource, SpecError, WatchTarget, schedule_interval};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "poolwatch";
/// Annotation whose every new value asks for a poll now.
pub const REFRESH_ANNOTATION: &str = "poolwatch.io/refresh-requested-at";
/// How often a watch stalled on its credentials re-reads its Secret to notice a fix. A Secret
/// read is a cheap Kubernetes call; the upstream call is made only once the Secret changed.
pub const SECRET_RECHECK: Duration = Duration::from_secs(15);
/// Longest condition message, in bytes (so in characters too): the gateway's messages can be long.
const MAX_MESSAGE_BYTES: usize = 512;
/// How long a new generation's poll may take before the generation is shown as Reconciling:
/// an answer within it is shown in the same write, so a new watch costs one status write.
pub const PROGRESS_DEADLINE: Duration = Duration::from_secs(1);
/// How often a watch whose poll is still running is looked at anyway: its task wakes it when
/// the poll finishes, so this is only a safety net (and when a failing watch's counts turn
/// stale meanwhile, the moment to say so).
const PARKED_RECHECK: Duration = Duration::from_secs(10);
/// The shortest wait before a deferred poll tries the budget again.
const MIN_DEFERRAL: Duration = Duration::from_millis(50);

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
    let reconciler = WatchReconciler::new(&ctx, &watch, &namespace);
    let result = tracing::Instrument::instrument(reconciler.run(), span).await;
    ctx.metrics.observe_reconcile(started.elapsed());
    result.map(Action::from)
}

/// When to look at a watch again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// After this long.
    In(Duration),
    /// Only when it changes (it is suspended).
    OnChange,
}

impl From<Next> for Action {
    fn from(next: Next) -> Self {
        match next {
            Next::In(wait) => Action::requeue(wait),
            Next::OnChange => Action::await_change(),
        }
    }
}

/// How long to wait after a failed reconcile (a Kubernetes call failed): exponential per watch,
/// from 1 s to 1 min.
pub fn error_policy(watch: Arc<PoolStatisticsWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    let key: WatchKey = (watch.namespace().unwrap_or_default(), watch.name_any());
    let failures = ctx.memories.kubernetes_failures(&key).max(1);
    let delay =
        Duration::from_secs(1 << failures.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    warn!(namespace = %key.0, name = %key.1, %error, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// One reconcile of one watch: what it knows of the watch and what it remembers of it. Its
/// memory goes back to the shared map when it is dropped, whichever way `run` ends.
struct WatchReconciler<'a> {
    ctx: &'a Arc<Context>,
    watch: &'a PoolStatisticsWatch,
    namespace: &'a str,
    request: schedule::Request<'a>,
    /// What the spec names (endpoints, project, workspace), or why it cannot be used.
    target: Result<WatchTarget, SpecError>,
    interval: Duration,
    /// The status as last written (or as read, before the first write).
    status: PoolStatisticsWatchStatus,
    memory: MemoryLease<'a>,
    /// The refresh request that the poll being shown answers: the one it started under.
    answered_refresh: Option<String>,
}

impl<'a> WatchReconciler<'a> {
    fn new(ctx: &'a Arc<Context>, watch: &'a PoolStatisticsWatch, namespace: &'a str) -> Self {
        let status = watch.status.clone().unwrap_or_default();
        let request = schedule::Request {
            generation: watch.meta().generation,
            refresh_token: watch
                .annotations()
                .get(REFRESH_ANNOTATION)
                .map(|value| crate::api::refresh_request(value)),
            suspended: watch.spec.suspend,
        };
        let target = WatchTarget::from_spec(&watch.spec, &ctx.settings.endpoints);
        // An unusable spec is still scheduled: its polls fail with InvalidSpec, paced by the
        // default interval if the interval itself is what is wrong.
        let interval = match &target {
            Ok(target) => target.interval,
            Err(_) => schedule_interval(&watch.spec),
        };
        let hosts = target
            .as_ref()
            .map_or_else(|_| Vec::new(), |target| ctx.hosts_of(target));
        ctx.metrics.set_hosts(
            &WatchLabels {
                namespace: namespace.to_owned(),
                name: watch.name_any(),
            },
            hosts,
        );
        let key = (namespace.to_owned(), watch.name_any());
        let federation = match &target {
            Ok(WatchTarget {
                credentials: CredentialSource::Federation(federation),
                ..
            }) => Some(federation),
            _ => None,
        };
        ctx.keyless.set_user(&key, federation);
        let memory = ctx.memories.lease(key, || {
            WatchMemory::recalled_from(&status, &request, interval, Instant::now())
        });
        let answered_refresh = memory.schedule.polled_refresh_token.clone();
        Self {
            ctx,
            watch,
            namespace,
            request,
            target,
            interval,
            status,
            memory,
            answered_refresh,
        }
    }

    /// Decides, polls when due, shows the outcome; says when to look at the watch again.
    async fn run(mut self) -> Result<Next, Error> {
        if let Some(unwritten) = self.memory.unwritten.clone() {
            self.write(unwritten).await?;
        }
        if let Some(running) = self.memory.running.take() {
            // A poll an earlier reconcile left running. Its answer is this reconcile's if it is
            // for this generation; a changed or suspended spec lets it finish unheard.
            if running.started_for.generation == self.request.generation && !self.request.suspended
            {
                return match running.park() {
                    Some(finished) => self.finish(&running.started_for, finished).await,
                    None => self.still_running(running).await,
                };
            }
        }
        let reason = match self.memory.schedule.decide(&self.request, Instant::now()) {
            Decision::Suspended => {
                self.apply(&Outcome::Suspended).await?;
                return Ok(Next::OnChange);
            }
            Decision::PollNow(reason) => reason,
            Decision::WaitUntil(_) if self.credentials_changed().await => PollReason::Due,
            Decision::WaitUntil(_) => {
                self.show_if_turned_stale().await?;
                return Ok(self.requeue());
            }
        };
        debug!(?reason, "polling");
        // A first poll may reuse an answer another watch of the same target just got; a new
        // spec, a refresh request or new keys want a new answer.
        let forced = !matches!(reason, PollReason::Due | PollReason::FirstPoll)
            || self.memory.stalled_on_secret.is_some();
        let running = self.start_poll(forced);
        if let Some(finished) = running.wait(PROGRESS_DEADLINE).await {
            return self.finish(&running.started_for, finished).await;
        }
        // Slow: until a status names the new generation, kstatus readers (Flux, `kubectl
        // wait`) go by the old status, or by none, so show it as Reconciling now. An answer
        // within the deadline is shown in one write: most new watches cost one status write.
        if self.status.observed_generation != self.request.generation {
            // Parked first, so a failed write (an error return) does not lose the poll.
            self.memory.running = Some(running.clone());
            self.apply(&Outcome::Progressing).await?;
            self.memory.running = None;
        }
        match running.park() {
            Some(finished) => self.finish(&running.started_for, finished).await,
            None => self.still_running(running).await,
        }
    }

    /// Starts a poll in a task of its own (see [`RunningPoll`]).
    fn start_poll(&mut self, forced: bool) -> RunningPoll {
        let job = PollJob {
            target: self.target.clone(),
            namespace: self.namespace.to_owned(),
            name: self.watch.name_any(),
            interval: self.interval,
            forced,
            reservation: self.memory.reservation.take(),
            started_for: StartedFor {
                generation: self.request.generation,
                refresh_token: self.request.refresh_token.map(str::to_owned),
            },
        };
        RunningPoll::start(self.ctx, job)
    }

    /// A poll is still running: keep it parked and give the reconcile slot back. Its task
    /// wakes the watch when it finishes; the late look is only a safety net.
    async fn still_running(&mut self, running: RunningPoll) -> Result<Next, Error> {
        self.memory.running = Some(running);
        self.show_if_turned_stale().await?;
        Ok(Next::In(PARKED_RECHECK))
    }

    /// Shows the outcome of a finished poll started for `started_for`.
    async fn finish(
        &mut self,
        started_for: &StartedFor,
        finished: Finished,
    ) -> Result<Next, Error> {
        self.memory.reservation = finished.reservation;
        self.answered_refresh = started_for.refresh_token.clone();
        let outcome = match finished.poll {
            Poll::Deferred(wait) => {
                if self.status.observed_generation != self.request.generation {
                    self.apply(&Outcome::Progressing).await?;
                }
                return Ok(self.defer(wait));
            }
            Poll::Polled {
                statistics,
                project_id,
                details,
            } => self.succeeded(&statistics, project_id, details),
            Poll::Failed(failure) => self.failed(failure),
        };
        self.apply(&outcome).await?;
        Ok(self.requeue())
    }

    /// Shows the failure of a failing watch again if its last good counts just turned stale.
    async fn show_if_turned_stale(&mut self) -> Result<(), Error> {
        if let Some(failure) = self.turned_stale() {
            let outcome = Outcome::Failed {
                failure,
                counts_fresh: false,
            };
            self.apply(&outcome).await?;
        }
        Ok(())
    }

    /// The upstream budget is spent: look again once it has room, without counting a failure.
    fn defer(&self, wait: Duration) -> Next {
        self.ctx.metrics.count_rate_limit_wait();
        debug!(
            wait_ms = wait.as_millis() as u64,
            "upstream budget spent; polling later"
        );
        Next::In(wait.max(MIN_DEFERRAL))
    }

    fn succeeded(
        &mut self,
        statistics: &PoolStatistics,
        project_id: String,
        details: Details,
    ) -> Outcome {
        let now = Instant::now();
        self.ctx.metrics.count_poll("success");
        let token = self.answered_refresh.clone();
        let answered = self.answered_request(&token);
        let attempt = attempt_of(&answered, self.interval, now);
        self.memory.schedule.record_success(&attempt);
        self.memory.stalled_on_secret = None;
        self.memory.failing = None;
        self.ctx.metrics.set_last_success(
            &self.labels(),
            Timestamp::now().as_millisecond() as f64 / 1000.0,
        );
        let details = match details {
            Details::Failed(mut failure) => {
                // The counts are shown; the list's failure is the watch's to report, once per
                // poll like any other.
                warn!(
                    reason = failure.reason,
                    "pool list failed: {}", failure.message
                );
                failure.message = shorten(&failure.message);
                Details::Failed(failure)
            }
            other => other,
        };
        Outcome::Polled {
            pools: counts_of(statistics),
            operation_time: statistics.operation_time.clone(),
            project_id,
            details,
        }
    }

    /// The failure to show again now that the last good counts of a failing watch turned
    /// stale, if they just did: `Ready` turns False when they do, not at the next retry.
    fn turned_stale(&self) -> Option<Failure> {
        let failure = self.memory.failing.as_ref()?;
        let stale = !self
            .memory
            .schedule
            .counts_fresh(self.interval, Instant::now());
        (stale && status::is_true(&self.status, status::READY)).then(|| failure.clone())
    }

    fn failed(&mut self, mut failure: Failure) -> Outcome {
        let now = Instant::now();
        self.ctx.metrics.count_poll(failure.reason);
        let counts_fresh = self.memory.schedule.counts_fresh(self.interval, now);
        let token = self.answered_refresh.clone();
        let answered = self.answered_request(&token);
        let attempt = attempt_of(&answered, self.interval, now);
        let delay = self.memory.schedule.record_failure(&attempt, failure.retry);
        self.memory.stalled_on_secret =
            failure.credentials.as_ref().map(|problem| StalledOnSecret {
                version: problem.marker(),
                next_check: now + SECRET_RECHECK,
            });
        warn!(
            reason = failure.reason,
            retry_in_s = delay.as_secs(),
            "poll failed: {}",
            failure.message
        );
        failure.message = shorten(&failure.message);
        self.memory.failing = Some(failure.clone());
        Outcome::Failed {
            failure,
            counts_fresh,
        }
    }

    /// For a watch stalled on its credentials and due for a check: whether its credentials
    /// changed since the failure (then poll now): its Secret was edited, its ServiceAccount
    /// appeared, new temporary keys came. Checks at most every [`SECRET_RECHECK`]; the
    /// credential sources keep their reads, so a check rarely calls anyone.
    async fn credentials_changed(&mut self) -> bool {
        let now = Instant::now();
        let Some(stalled) = self.memory.stalled_on_secret.as_mut() else {
            return false;
        };
        if stalled.next_check > now {
            return false;
        }
        stalled.next_check = now + SECRET_RECHECK;
        let known = stalled.version.clone();
        let Ok(target) = &self.target else {
            return false;
        };
        let current = match self
            .ctx
            .credentials(self.namespace, &target.credentials, true)
            .await
        {
            Ok(loaded) => loaded.version,
            Err(error) if error.is_permanent() => unusable_marker(error.reason()),
            // A hiccup tells nothing about a change.
            Err(_) => return false,
        };
        let changed = current != known;
        if changed {
            info!(credentials = %target.credentials, "credentials changed; polling at once");
        }
        changed
    }

    /// Computes the status after `outcome`, writes it if it changed, publishes the events its
    /// transitions deserve and updates the watch's metrics.
    async fn apply(&mut self, outcome: &Outcome) -> Result<(), Error> {
        let mut base = self.status.clone();
        if !self.wants_pool_details() {
            // Turned off (or never on): whatever the outcome, the details go with the wish.
            status::forget_details(&mut base);
        }
        let mut next =
            status::next_status(&base, self.request.generation, outcome, Timestamp::now());
        // Which kind of credentials is in use, for `kubectl get -o wide`: derived from the
        // spec, so it changes only with it.
        if let Ok(target) = &self.target {
            next.credentials = Some(target.credentials.to_string());
        }
        // A finished poll answered the refresh request it was made under, if any.
        if matches!(outcome, Outcome::Polled { .. } | Outcome::Failed { .. })
            && let Some(token) = self.answered_refresh.as_deref()
        {
            next.last_handled_refresh_request = Some(token.to_owned());
        }
        let labels = self.labels();
        if let Some(pools) = &next.pools {
            self.ctx.metrics.set_pools(&labels, pools);
        }
        self.ctx
            .metrics
            .set_pool_details(&labels, &next.pool_details);
        for condition in &next.conditions {
            self.ctx
                .metrics
                .set_condition(&labels, &condition.type_, &condition.status);
        }
        let previous = self.status.clone();
        self.write(next).await?;
        for notice in status::transition_notices(&previous, &self.status) {
            self.publish(notice).await;
        }
        Ok(())
    }

    /// Writes `next` by server-side apply if it differs from the status written last. A failed
    /// write is remembered and written first by the next reconcile.
    async fn write(&mut self, next: PoolStatisticsWatchStatus) -> Result<(), Error> {
        if next == self.status {
            self.memory.unwritten = None;
            return Ok(());
        }
        let api: Api<PoolStatisticsWatch> =
            Api::namespaced(self.ctx.client.clone(), self.namespace);
        let patch = serde_json::json!({
            "apiVersion": PoolStatisticsWatch::api_version(&()),
            "kind": PoolStatisticsWatch::kind(&()),
            "status": next,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch_status(&self.watch.name_any(), &params, &Patch::Apply(&patch))
            .await
        {
            Ok(_) => {
                self.ctx.metrics.count_status_write("success");
                self.memory.unwritten = None;
                self.memory.kubernetes_failures = 0;
                self.status = next;
                Ok(())
            }
            Err(source) => {
                let result = match &source {
                    kube::Error::Api(status) if status.code == 409 => "conflict",
                    _ => "error",
                };
                self.ctx.metrics.count_status_write(result);
                self.memory.unwritten = Some(next);
                self.memory.kubernetes_failures = self.memory.kubernetes_failures.saturating_add(1);
                Err(Error::StatusWrite {
                    object: format!("{}/{}", self.namespace, self.watch.name_any()),
                    source,
                })
            }
        }
    }

    async fn publish(&self, notice: Notice) {
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
        let regarding = self.watch.object_ref(&());
        if let Err(error) = self.ctx.recorder.publish(&event, &regarding).await {
            // Events are a courtesy: a failure to publish one must not fail the reconcile.
            warn!(%error, "could not publish an event");
        }
    }

    /// When to look at the watch again: its next poll, its next Secret check, or the moment
    /// a failing watch's last good counts turn stale, whichever comes first.
    fn requeue(&self) -> Next {
        let now = Instant::now();
        let due = self.memory.schedule.next_due.unwrap_or(now + self.interval);
        let secret_check = self.memory.stalled_on_secret.as_ref().map(|s| s.next_check);
        let turns_stale = self
            .memory
            .failing
            .as_ref()
            .and(self.memory.schedule.stale_at(self.interval))
            .filter(|at| *at > now);
        let wake = [secret_check, turns_stale]
            .into_iter()
            .flatten()
            .fold(due, Instant::min);
        Next::In(wake.saturating_duration_since(now))
    }

    /// The request that the poll being shown answers: this generation, under the refresh
    /// request it started with.
    fn answered_request<'t>(&self, token: &'t Option<String>) -> schedule::Request<'t> {
        schedule::Request {
            generation: self.request.generation,
            refresh_token: token.as_deref(),
            suspended: self.request.suspended,
        }
    }

    /// Whether the spec asks for pool details. An unusable spec keeps what is shown, as it
    /// keeps the counts.
    fn wants_pool_details(&self) -> bool {
        match &self.target {
            Ok(target) => target.pool_details,
            Err(_) => self.watch.spec.pool_details,
        }
    }

    fn labels(&self) -> WatchLabels {
        WatchLabels {
            namespace: self.namespace.to_owned(),
            name: self.watch.name_any(),
        }
    }
}

/// The poll for `request` that finished `now`, with a fresh random draw.
fn attempt_of<'r>(
    request: &'r schedule::Request<'r>,
    interval: Duration,
    now: Instant,
) -> schedule::Attempt<'r> {
    schedule::Attempt {
        request,
        interval,
        jitter: Jitter::random(),
        now,
    }
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

fn shorten(message: &str) -> String {
    crate::modelarts::bounded::cut(message, MAX_MESSAGE_BYTES).into_owned()
}

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
