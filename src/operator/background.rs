//! Polls in tasks of their own. A reconcile holds one of the controller's slots while it runs,
//! and a poll may wait a long time on a slow or hung upstream (timeouts, then retries). So a
//! reconcile starts its poll as a task and waits only a moment for the answer; if none came, it
//! leaves the poll running (parks it in the watch's memory) and gives its slot back. The task
//! wakes the watch's controller when it finishes, and that reconcile shows the answer.
//!
//! A namespace's polls in flight are bounded by its [`NamespaceSlots`] share, taken before the
//! task starts and held until it ends, even when the watch moved on and no one waits for it.
//!
//! [`NamespaceSlots`]: super::fairness::NamespaceSlots

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;

use crate::api::PoolStatisticsWatch;
use crate::lock::lock;

use super::context::Context;
use super::failure::Failure;
use super::poll::{Poll, PollRequest};
use super::target::{SpecError, WatchTarget};
use super::upstream::{BUSY_RETRY, Reservation};

/// The streams that wake controllers for watches whose parked polls finished.
#[derive(Default)]
pub struct PollWakers {
    routes: Mutex<Vec<Route>>,
}

struct Route {
    /// The controller's namespace, or `None` for one of all namespaces.
    namespace: Option<String>,
    sender: mpsc::UnboundedSender<ObjectRef<PoolStatisticsWatch>>,
}

impl PollWakers {
    /// The watches of `namespace` (all namespaces when `None`) to reconcile because their polls
    /// finished, for [`Controller::reconcile_on`](kube::runtime::Controller::reconcile_on).
    /// Each controller gets only its own watches: one it does not know would count as deleted.
    pub fn register(
        &self,
        namespace: Option<String>,
    ) -> mpsc::UnboundedReceiver<ObjectRef<PoolStatisticsWatch>> {
        let (sender, receiver) = mpsc::unbounded();
        lock(&self.routes).push(Route { namespace, sender });
        receiver
    }

    /// Asks the controller of `namespace` to reconcile watch `name`.
    pub fn wake(&self, namespace: &str, name: &str) {
        let object = ObjectRef::new(name).within(namespace);
        lock(&self.routes).retain(|route| {
            let mine = route.namespace.as_deref().is_none_or(|n| n == namespace);
            // A controller that stopped has dropped its receiver: forget its route.
            !mine || route.sender.unbounded_send(object.clone()).is_ok()
        });
    }
}

/// What a poll was started for. Its answer is shown as the answer to this, even when the
/// watch has been asked for more since (a newer refresh request gets a poll of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartedFor {
    /// The generation polled.
    pub generation: Option<i64>,
    /// The refresh annotation's value when the poll started.
    pub refresh_token: Option<String>,
}

/// Everything a poll needs, owned, so that it can outlive the reconcile that started it.
pub struct PollJob {
    /// What the spec names, or why it cannot be used.
    pub target: Result<WatchTarget, SpecError>,
    /// The watch's namespace.
    pub namespace: String,
    /// The watch's name, to wake its controller.
    pub name: String,
    /// Its interval.
    pub interval: Duration,
    /// Whether it wants a new answer (see [`PollRequest::forced`]).
    pub forced: bool,
    /// Its place in its upstream budget's queue.
    pub reservation: Option<Reservation>,
    /// What it is for.
    pub started_for: StartedFor,
}

/// A finished poll and the budget reservation it leaves.
#[derive(Debug)]
pub struct Finished {
    /// How the poll went.
    pub poll: Poll,
    /// The watch's place in its budget's queue, if it still holds one.
    pub reservation: Option<Reservation>,
}

/// A poll running in its own task, or just finished.
#[derive(Clone)]
pub struct RunningPoll {
    /// What it was started for.
    pub started_for: StartedFor,
    progress: Arc<Progress>,
}

struct Progress {
    state: Mutex<State>,
    finished: Notify,
}

enum State {
    Running { parked: bool },
    // Boxed: a poll's answer (counts, pool details, a failure) is a few hundred bytes, and a
    // running poll's state should not be.
    Finished(Box<Finished>),
    Taken,
}

impl Progress {
    /// Records the answer; says whether the poll was parked (then no one waits: wake).
    fn finish(&self, finished: Finished) -> bool {
        let parked = {
            let mut state = lock(&self.state);
            let State::Running { parked } = *state else {
                return false;
            };
            *state = State::Finished(Box::new(finished));
            parked
        };
        self.finished.notify_one();
        parked
    }
}

/// Records an interrupted poll if the task ends without an answer (it panicked), so a parked
/// watch is never left waiting for a task that is gone.
struct FinishOnDrop {
    progress: Arc<Progress>,
    wake: Box<dyn Fn() + Send>,
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let interrupted = Finished {
            poll: Poll::Failed(Failure::interrupted()),
            reservation: None,
        };
        if self.progress.finish(interrupted) {
            (self.wake)();
        }
    }
}

impl RunningPoll {
    /// Starts `job` in its own task, if its namespace has a slot free; otherwise the poll is
    /// deferred at once (without a failure), as a spent upstream budget defers it.
    pub fn start(ctx: &Arc<Context>, job: PollJob) -> Self {
        let started_for = job.started_for.clone();
        let Some(slot) = ctx.namespace_slots.try_take(&job.namespace) else {
            return Self::finished(
                started_for,
                Finished {
                    poll: Poll::Deferred(BUSY_RETRY),
                    reservation: job.reservation,
                },
            );
        };
        let progress = Arc::new(Progress {
            state: Mutex::new(State::Running { parked: false }),
            finished: Notify::new(),
        });
        let waker = {
            let ctx = Arc::clone(ctx);
            let (namespace, name) = (job.namespace.clone(), job.name.clone());
            move || ctx.wakers.wake(&namespace, &name)
        };
        let guard = FinishOnDrop {
            progress: Arc::clone(&progress),
            wake: Box::new(waker),
        };
        let ctx = Arc::clone(ctx);
        tokio::spawn(async move {
            let _slot = slot;
            let PollJob {
                target,
                namespace,
                interval,
                forced,
                mut reservation,
                ..
            } = job;
            let request = PollRequest {
                target: &target,
                namespace: &namespace,
                interval,
                forced,
            };
            let poll = ctx.poll(&request, &mut reservation).await;
            if guard.progress.finish(Finished { poll, reservation }) {
                (guard.wake)();
            }
        });
        Self {
            started_for,
            progress,
        }
    }

    fn finished(started_for: StartedFor, finished: Finished) -> Self {
        Self {
            started_for,
            progress: Arc::new(Progress {
                state: Mutex::new(State::Finished(Box::new(finished))),
                finished: Notify::new(),
            }),
        }
    }

    /// The answer, if it comes within `up_to`.
    pub async fn wait(&self, up_to: Duration) -> Option<Finished> {
        if let Some(finished) = self.take() {
            return Some(finished);
        }
        let _ = tokio::time::timeout(up_to, self.progress.finished.notified()).await;
        self.take()
    }

    /// The answer if it came; otherwise marks the poll parked, so that its task wakes the
    /// watch when it finishes. Checking and marking are one step: no answer slips between.
    pub fn park(&self) -> Option<Finished> {
        let mut state = lock(&self.progress.state);
        if let State::Running { parked } = &mut *state {
            *parked = true;
            return None;
        }
        take_answer(&mut state)
    }

    fn take(&self) -> Option<Finished> {
        let mut state = lock(&self.progress.state);
        if matches!(*state, State::Running { .. }) {
            return None;
        }
        take_answer(&mut state)
    }
}

/// The answer out of a state that is no longer running (once: then it is taken).
fn take_answer(state: &mut State) -> Option<Finished> {
    match std::mem::replace(state, State::Taken) {
        State::Finished(finished) => Some(*finished),
        State::Running { .. } | State::Taken => None,
    }
}

impl fmt::Debug for RunningPoll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningPoll")
            .field("started_for", &self.started_for)
            .finish_non_exhaustive()
    }
}
