//! The queue's data types; backend-neutral.

use std::fmt;
use std::str::FromStr;

/// Where a job is in its life. Stored as lowercase text so the database stays readable by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker (possibly not before its `run_at`, after a failed attempt).
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Finished successfully.
    Done,
    /// Dead letter: failed `max_attempts` times; kept with its last error for an operator.
    Dead,
    /// Replaced by a newer job for the same pull request before (or while) it ran.
    Superseded,
    /// Its pull request closed or its installation went away.
    Dropped,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Dead,
        JobState::Superseded,
        JobState::Dropped,
    ];

    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Dead => "dead",
            JobState::Superseded => "superseded",
            JobState::Dropped => "dropped",
        }
    }

    /// True for states a job never leaves on its own.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored text was not one of [`JobState::as_str`]'s values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state `{0}`")]
pub struct UnknownJobState(pub String);

impl FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.to_owned()))
    }
}

/// A job to enqueue. The indexed columns are what supersede/drop and routing need; everything
/// forge-specific rides in `payload`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    pub forge: String,
    pub installation_id: Option<i64>,
    pub repo_id: i64,
    pub pr_number: Option<i64>,
    pub head_sha: Option<String>,
    pub payload: serde_json::Value,
    /// Replace older work for the same (forge, repo_id, pr_number): a new push makes a review
    /// of the previous head pointless. Requires `pr_number`.
    pub supersedes: bool,
    /// Not before this time (epoch ms); `None` means runnable at once, whatever `now_ms` the
    /// claimer passes.
    pub run_at_ms: Option<i64>,
}

/// A stored job as a worker or the CLI sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub forge: String,
    pub installation_id: Option<i64>,
    pub repo_id: i64,
    pub pr_number: Option<i64>,
    pub head_sha: Option<String>,
    pub payload: serde_json::Value,
    pub state: JobState,
    /// Claims so far, including the current one while running.
    pub attempts: i64,
    pub last_error: Option<String>,
    /// The job was superseded or dropped while running: its worker should stop early.
    pub cancel_requested: bool,
    /// Not before this time (epoch ms): a retry's backoff or a deferral's wait.
    pub run_at_ms: i64,
    /// Times the job was put back to wait for a write budget ([`Queue::defer`](super::Queue::defer)).
    pub deferrals: i64,
    /// Times a worker's lease on the job ran out (the worker crashed or died) and the job was
    /// taken back.
    pub lease_expiries: i64,
    /// Set by [`Queue::claim`](super::Queue::claim) on a job that is out of attempts (its
    /// last one crashed, or its lease expired): the worker must not run it again, only
    /// conclude what it left pending and then [`give_up`](super::Queue::give_up).
    pub conclude_only: bool,
}

/// What [`Queue::enqueue`](super::Queue::enqueue) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnqueueOutcome {
    pub id: i64,
    /// Queued jobs of the same PR that will now never run.
    pub superseded: Vec<i64>,
    /// Running jobs of the same PR whose workers are asked to stop.
    pub cancel_requested: Vec<i64>,
}

/// Answer to a worker's heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// False when the lease was lost (expired and taken over, or the job finished elsewhere):
    /// the worker must stop and not report a result.
    pub held: bool,
    /// The job was superseded or dropped: stop early, then call `release` (or `complete`).
    pub cancel_requested: bool,
}

/// What [`Queue::fail`](super::Queue::fail) did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Back to `queued`, not before `run_at_ms`.
    Retry { attempts: i64, run_at_ms: i64 },
    /// Out of attempts: now `dead`, with the error kept.
    Dead { attempts: i64 },
    /// Cancellation had been requested, so the job went to its terminal state instead of retrying.
    Canceled { state: JobState },
    /// The worker no longer holds the job; nothing changed.
    NotHeld,
}

/// What [`Queue::defer`](super::Queue::defer) did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferOutcome {
    /// Back to `queued`, not before `run_at_ms`, its attempt not counted.
    Deferred { run_at_ms: i64, deferrals: i64 },
    /// Deferred too often or too long already ([`QueueConfig::max_deferrals`],
    /// [`QueueConfig::max_deferred_ms`]): nothing changed, the worker still holds the job and
    /// should conclude it and [`give_up`](super::Queue::give_up).
    LimitReached {
        deferrals: i64,
        /// Since the job was first deferred.
        deferred_ms: i64,
    },
    /// Cancellation had been requested, so the job went to its terminal state instead.
    Canceled { state: JobState },
    /// The worker no longer holds the job; nothing changed.
    NotHeld,
}

/// What [`Queue::drop_pr`](super::Queue::drop_pr) and
/// [`Queue::drop_installation`](super::Queue::drop_installation) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropOutcome {
    /// Queued jobs moved to `dropped`.
    pub dropped: Vec<i64>,
    /// Running jobs whose workers are asked to stop.
    pub cancel_requested: Vec<i64>,
}

/// Gauges for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// All queued jobs, including retries waiting out their backoff.
    pub queued: i64,
    pub running: i64,
    pub dead: i64,
    /// How long the longest-waiting runnable job has been runnable; `None` when none is.
    pub oldest_queued_age_ms: Option<i64>,
}

/// Rows removed by [`Queue::prune`](super::Queue::prune).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneOutcome {
    pub deliveries: u64,
    pub jobs: u64,
    pub pr_heads: u64,
}

/// Retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Claims a job gets before it is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles per attempt.
    pub backoff_base_ms: u64,
    /// Upper bound of the delay.
    pub backoff_cap_ms: u64,
    /// Times a job may be deferred ([`Queue::defer`](super::Queue::defer)) before it is given up.
    pub max_deferrals: u32,
    /// How long after its first deferral a job may still be deferred.
    pub max_deferred_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_attempts: 5,
            backoff_base_ms: 2_000,
            backoff_cap_ms: 5 * 60 * 1_000,
            // GitHub's content limits are per minute and per hour: a review waits out a few
            // windows at most; one still waiting after six hours will not be wanted any more.
            max_deferrals: 50,
            max_deferred_ms: 6 * 60 * 60 * 1_000,
        }
    }
}

impl QueueConfig {
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    pub fn with_backoff(mut self, base_ms: u64, cap_ms: u64) -> Self {
        self.backoff_base_ms = base_ms;
        self.backoff_cap_ms = cap_ms;
        self
    }

    pub fn with_deferral_limits(mut self, max_deferrals: u32, max_deferred_ms: u64) -> Self {
        self.max_deferrals = max_deferrals;
        self.max_deferred_ms = max_deferred_ms;
        self
    }

    /// The un-jittered delay after the `attempts`-th failed attempt: `base * 2^(attempts-1)`,
    /// capped. Saturates instead of overflowing.
    pub fn backoff_ceiling_ms(&self, attempts: i64) -> u64 {
        let exponent = u32::try_from(attempts.saturating_sub(1).max(0)).unwrap_or(u32::MAX);
        let factor = 1u64.checked_shl(exponent.min(63)).unwrap_or(u64::MAX);
        self.backoff_base_ms
            .saturating_mul(factor)
            .min(self.backoff_cap_ms)
    }

    /// The jittered delay: uniform in `[ceiling/2, ceiling]` ("equal jitter"), so retries of
    /// jobs that failed together (a forge outage) spread out but still back off.
    pub fn backoff_ms(&self, attempts: i64) -> u64 {
        use rand::Rng;
        let ceiling = self.backoff_ceiling_ms(attempts);
        let half = ceiling / 2;
        half + rand::rng().random_range(0..=ceiling - half)
    }

    pub(crate) fn validate(&self) -> Result<(), super::QueueError> {
        if self.max_attempts == 0 {
            return Err(super::QueueError::Invalid(
                "max_attempts must be at least 1".into(),
            ));
        }
        if self.backoff_base_ms > self.backoff_cap_ms {
            return Err(super::QueueError::Invalid(format!(
                "backoff_base_ms ({}) exceeds backoff_cap_ms ({})",
                self.backoff_base_ms, self.backoff_cap_ms
            )));
        }
        Ok(())
    }
}
