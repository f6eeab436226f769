//! When a watch polls next: at once for new work, every interval with jitter, and backing off
//! after failures. Pure decisions over remembered facts and an injected clock and random draw.
//!
//! Every status write comes back to the controller as a watch event and triggers a reconcile.
//! The memory kept here is what lets such a reconcile see that no poll is due, so that a status
//! write can never cause an upstream call.

use std::time::Duration;

use tokio::time::Instant;

use super::failure::Retry;

/// Fraction of the interval by which each poll is moved at random, so that watches created
/// together, or all watches after an operator restart, do not poll in lockstep.
pub const JITTER_FRACTION: f64 = 0.1;
/// Delay before the first retry of a transient failure; doubled for each further failure.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(5);
/// How long a permanent failure (refused keys, unknown project, bad spec) waits before it is
/// tried again without a change. Repeated authentication failures can lock Huawei access keys,
/// so this is slow; a changed spec or Secret is tried at once instead.
pub const PERMANENT_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);
/// How many intervals a successful poll's counts stay fresh through transient failures.
pub const FRESH_INTERVALS: u32 = 3;

/// A random draw in `[-1.0, 1.0]`, injected so that decisions are testable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Jitter(f64);

impl Jitter {
    /// A draw from the thread's random generator.
    pub fn random() -> Self {
        Self(fastrand::f64().mul_add(2.0, -1.0))
    }

    /// A fixed draw, clamped to `[-1.0, 1.0]`; `Jitter::fixed(0.0)` means no jitter.
    #[cfg(test)]
    pub fn fixed(value: f64) -> Self {
        Self(value.clamp(-1.0, 1.0))
    }

    /// `base` moved by up to ±[`JITTER_FRACTION`] of itself.
    pub fn apply(self, base: Duration) -> Duration {
        base.mul_f64(1.0 + JITTER_FRACTION * self.0)
    }
}

/// What a watch's spec and metadata say about polling, as seen by one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The value of the refresh annotation, if any.
    pub refresh_token: Option<&'a str>,
    /// `spec.suspend`.
    pub suspended: bool,
}

/// Why a poll happens now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollReason {
    /// The watch has never been polled by this operator.
    FirstPoll,
    /// Its spec changed since the last poll.
    SpecChanged,
    /// Someone set a new value of the refresh annotation.
    RefreshRequested,
    /// The interval, or a retry delay, has passed.
    Due,
}

/// The schedule's answer for one reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `spec.suspend` is set: do not poll.
    Suspended,
    /// Poll now.
    PollNow(PollReason),
    /// Nothing to do before this instant.
    WaitUntil(Instant),
}

/// A finished poll, as the schedule records it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// What the poll was for.
    pub request: &'a Request<'a>,
    /// The watch's interval.
    pub interval: Duration,
    /// The random draw that moves the next poll.
    pub jitter: Jitter,
    /// When the poll finished.
    pub now: Instant,
}

/// What the operator remembers of one watch between reconciles. Lost on restart, which then
/// counts as a first poll: that is why the first poll after a start is jittered by the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// The generation whose poll last finished, successfully or not.
    pub polled_generation: Option<i64>,
    /// The refresh annotation value last acted on.
    pub polled_refresh_token: Option<String>,
    /// When the next poll is due.
    pub next_due: Option<Instant>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When the latest successful poll finished.
    pub last_success: Option<Instant>,
}

impl Memory {
    /// Whether to poll now, and if not, until when to wait.
    pub fn decide(&self, request: &Request<'_>, now: Instant) -> Decision {
        if request.suspended {
            return Decision::Suspended;
        }
        if self.polled_generation.is_none() {
            return Decision::PollNow(PollReason::FirstPoll);
        }
        if self.polled_generation != request.generation {
            return Decision::PollNow(PollReason::SpecChanged);
        }
        if let Some(token) = request.refresh_token
            && self.polled_refresh_token.as_deref() != Some(token)
        {
            return Decision::PollNow(PollReason::RefreshRequested);
        }
        match self.next_due {
            Some(due) if due > now => Decision::WaitUntil(due),
            _ => Decision::PollNow(PollReason::Due),
        }
    }

    /// Records that a poll for `request` finished, so the same generation and refresh token do
    /// not trigger another.
    fn record_attempt(&mut self, request: &Request<'_>) {
        self.polled_generation = request.generation;
        self.polled_refresh_token = request.refresh_token.map(str::to_owned);
    }

    /// Records a successful poll: the next one is one jittered interval away.
    pub fn record_success(&mut self, attempt: &Attempt<'_>) {
        self.record_attempt(attempt.request);
        self.consecutive_failures = 0;
        self.last_success = Some(attempt.now);
        self.next_due = Some(attempt.now + attempt.jitter.apply(attempt.interval));
    }

    /// Records a failed poll and schedules the retry: exponential from [`FIRST_RETRY_DELAY`]
    /// and capped at the interval for transient failures, [`PERMANENT_RETRY_DELAY`] (or the
    /// interval, if longer) for permanent ones, and never sooner than the server's `Retry-After`.
    pub fn record_failure(&mut self, attempt: &Attempt<'_>, retry: Retry) -> Duration {
        let Attempt {
            request,
            interval,
            jitter,
            now,
        } = *attempt;
        self.record_attempt(request);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let delay = match retry {
            Retry::Permanent => jitter.apply(PERMANENT_RETRY_DELAY.max(interval)),
            Retry::Transient { after: retry_after } => {
                let exponent = self.consecutive_failures.saturating_sub(1).min(16);
                let backoff = FIRST_RETRY_DELAY
                    .saturating_mul(1 << exponent)
                    .min(interval);
                jitter.apply(backoff).max(retry_after.unwrap_or_default())
            }
        };
        self.next_due = Some(now + delay);
        delay
    }

    /// Whether the last good counts are still fresh enough to keep `Ready` true through a
    /// transient failure: the last success is at most [`FRESH_INTERVALS`] intervals old.
    pub fn counts_fresh(&self, interval: Duration, now: Instant) -> bool {
        self.stale_at(interval).is_some_and(|stale| now < stale)
    }

    /// The first instant at which the last good counts are no longer fresh: just after
    /// [`FRESH_INTERVALS`] intervals from the last success.
    pub fn stale_at(&self, interval: Duration) -> Option<Instant> {
        self.last_success
            .map(|at| at + interval * FRESH_INTERVALS + Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(300);

    fn attempt<'a>(request: &'a Request<'a>, now: Instant) -> Attempt<'a> {
        Attempt {
            request,
            interval: INTERVAL,
            jitter: Jitter::fixed(0.0),
            now,
        }
    }

    fn request(generation: i64) -> Request<'static> {
        Request {
            generation: Some(generation),
            refresh_token: None,
            suspended: false,
        }
    }

    fn polled_at(now: Instant) -> Memory {
        let mut memory = Memory::default();
        memory.record_success(&attempt(&request(1), now));
        memory
    }

    #[test]
    fn a_new_watch_polls_at_once() {
        let now = Instant::now();
        assert_eq!(
            Memory::default().decide(&request(1), now),
            Decision::PollNow(PollReason::FirstPoll)
        );
    }

    #[test]
    fn after_a_success_nothing_is_due_until_the_interval_passes() {
        let now = Instant::now();
        let memory = polled_at(now);
        let later = now + Duration::from_secs(10);
        assert_eq!(
            memory.decide(&request(1), later),
            Decision::WaitUntil(now + INTERVAL)
        );
        assert_eq!(
            memory.decide(&request(1), now + INTERVAL),
            Decision::PollNow(PollReason::Due)
        );
    }

    #[test]
    fn a_spec_change_polls_at_once() {
        let now = Instant::now();
        assert_eq!(
            polled_at(now).decide(&request(2), now),
            Decision::PollNow(PollReason::SpecChanged)
        );
    }

    #[test]
    fn a_new_refresh_token_polls_once() {
        let now = Instant::now();
        let mut memory = polled_at(now);
        let refresh = Request {
            refresh_token: Some("2026-11-26T10:00:00Z"),
            ..request(1)
        };
        assert_eq!(
            memory.decide(&refresh, now),
            Decision::PollNow(PollReason::RefreshRequested)
        );
        memory.record_success(&attempt(&refresh, now));
        assert!(matches!(
            memory.decide(&refresh, now),
            Decision::WaitUntil(_)
        ));
    }

    #[test]
    fn suspended_never_polls() {
        let suspended = Request {
            suspended: true,
            ..request(1)
        };
        assert_eq!(
            Memory::default().decide(&suspended, Instant::now()),
            Decision::Suspended
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(Jitter::fixed(1.0).apply(INTERVAL), Duration::from_secs(330));
        assert_eq!(
            Jitter::fixed(-1.0).apply(INTERVAL),
            Duration::from_secs(270)
        );
        assert_eq!(Jitter::fixed(7.0).apply(INTERVAL), Duration::from_secs(330));
        for _ in 0..1000 {
            let moved = Jitter::random().apply(INTERVAL);
            assert!((Duration::from_secs(270)..=Duration::from_secs(330)).contains(&moved));
        }
    }

    #[test]
    fn transient_failures_back_off_exponentially_capped_at_the_interval() {
        let now = Instant::now();
        let mut memory = Memory::default();
        let transient = Retry::Transient { after: None };
        let delays: Vec<u64> = (0..8)
            .map(|_| memory.record_failure(&attempt(&request(1), now), transient))
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn retry_after_is_honoured_even_beyond_the_interval() {
        let now = Instant::now();
        let mut memory = Memory::default();
        let throttled = Retry::Transient {
            after: Some(Duration::from_secs(600)),
        };
        let delay = memory.record_failure(&attempt(&request(1), now), throttled);
        assert_eq!(delay, Duration::from_secs(600));
    }

    #[test]
    fn permanent_failures_retry_slowly() {
        let now = Instant::now();
        let mut memory = Memory::default();
        let delay = memory.record_failure(&attempt(&request(1), now), Retry::Permanent);
        assert_eq!(delay, PERMANENT_RETRY_DELAY);
        assert_eq!(
            memory.decide(&request(1), now + INTERVAL),
            Decision::WaitUntil(now + delay)
        );
    }

    #[test]
    fn a_success_resets_the_backoff() {
        let now = Instant::now();
        let mut memory = Memory::default();
        let transient = Retry::Transient { after: None };
        for _ in 0..4 {
            memory.record_failure(&attempt(&request(1), now), transient);
        }
        memory.record_success(&attempt(&request(1), now));
        let delay = memory.record_failure(&attempt(&request(1), now), transient);
        assert_eq!(delay, FIRST_RETRY_DELAY);
    }

    #[test]
    fn counts_stay_fresh_for_three_intervals() {
        let now = Instant::now();
        let memory = polled_at(now);
        assert!(memory.counts_fresh(INTERVAL, now + INTERVAL * 3));
        assert!(!memory.counts_fresh(INTERVAL, now + INTERVAL * 3 + Duration::from_secs(1)));
        assert!(!Memory::default().counts_fresh(INTERVAL, now));
    }
}
