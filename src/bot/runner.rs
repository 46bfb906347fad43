//! What every forge's worker shares: the job-runner interface, cancellation and outcomes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use crate::forge::ForgeError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error("{0}")]
    Review(String),
}

impl From<crate::forge::http::ApiError> for BotError {
    fn from(error: crate::forge::http::ApiError) -> BotError {
        BotError::Forge(error.into())
    }
}

impl BotError {
    /// The job stopped only because a write budget is spent (a forge's rate limit, or the
    /// review's share of the installation's): how long to wait. The worker defers the job
    /// until then instead of counting a failed attempt.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            BotError::Forge(error) => error.retry_after(),
            BotError::Review(_) => None,
        }
    }
}

/// Why a review produced no plan, for the forge adapters to conclude their check or status
/// (see [`ReviewFailure::verdict`] in `bot/fetch.rs`).
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewFailure {
    /// The policy on the base branch is invalid: concluded as a failure naming it.
    Config(String),
    /// The change could not be judged (time limit, memory, a cap): concluded at once as the
    /// policy's `incomplete` says, failure when the policy was not read. Never retried.
    Incomplete {
        title: String,
        summary: String,
        policy: Option<crate::config::Incomplete>,
    },
    /// The review process crashed: concluded as a failure at once, never retried.
    Crashed(String),
    /// Anything else: retried, then concluded as a failure.
    Other(String),
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Published {
        conclusion: String,
        /// The check run (GitHub) or summary note (GitLab) that carries the result.
        published_id: u64,
        /// What the review found, for the platform team's numbers (none when no plan was
        /// made: a failed or incomplete review).
        review: Option<Box<crate::queue::ownership::ReviewOutcome>>,
    },
    Skipped(String),
    /// The job's work belongs to other jobs (e.g. a re-requested check, once its head is mapped
    /// to pull requests, becomes one job per pull request so each runs with that PR's work).
    /// The worker queues them, at most once per job, and completes this one.
    HandOff {
        jobs: Vec<crate::queue::NewJob>,
        why: String,
    },
    /// A default-branch snapshot, for the worker to store: whether a review covered it is
    /// asked of the queue, among `covering` (the commit and its parents).
    Snapshot {
        snapshot: Box<crate::queue::ownership::NewSnapshot>,
        covering: Vec<String>,
    },
}

/// Runs the jobs of one forge. Workers dispatch on the job's `forge` column.
pub trait JobRunner: Send + Sync {
    fn run_job<'a>(
        &'a self,
        payload: &'a Value,
        cancel: &'a Cancel,
        last_attempt: bool,
    ) -> BoxFuture<'a, Result<JobOutcome, BotError>>;

    /// The worker gave the job up from outside (its time limit cut it off on its last
    /// attempt), so `run_job` could not conclude anything: fail the check or status it left
    /// pending, so that no required check waits forever.
    fn conclude_abandoned<'a>(
        &'a self,
        payload: &'a Value,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BotError>>;
}

/// Set by the heartbeat when the job is superseded or dropped.
#[derive(Debug, Default, Clone)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Reviews (fetch, parse, audit) are CPU work: at most one per core but one runs at a time,
/// so a core stays free to answer webhooks in milliseconds even when every worker is busy.
pub async fn review_slot() -> tokio::sync::SemaphorePermit<'static> {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    });
    // The semaphore is never closed, so acquiring cannot fail.
    match slots.acquire().await {
        Ok(permit) => permit,
        Err(_) => unreachable!("the review semaphore is never closed"),
    }
}
