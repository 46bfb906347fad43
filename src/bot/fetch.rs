//! Fetching and reviewing, for every forge: fetch into the bare cache (only the parent holds
//! credentials), review in a child process under the job's budgets and time limit, and turn
//! every way that can end into one [`Verdict`] the forge adapters publish as they are.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::runner::ReviewFailure;
use super::sandbox::{ChildFailure, ChildRequest, SandboxSettings, review_in_child};
use crate::config::Incomplete;
use crate::forge::FetchPlan;
use crate::git::cache::{AbandonOnDrop, CacheKey, FetchBudget, FetchRequest, GitCache};
use crate::owners::Flavor;
use crate::pipeline::ReviewBudgets;
use crate::review::{Conclusion, ReviewPlan};

/// What one review may take, the same on every forge.
#[derive(Debug, Clone)]
pub struct ReviewLimits {
    /// Bytes all fetches of one job may receive together.
    pub max_fetch_bytes: u64,
    /// Shallow fetch depth; missing commits are fetched by id.
    pub fetch_depth: i32,
    /// Wall time for fetching and reviewing (not publishing: once there is a plan, the check
    /// says its conclusion).
    pub time_limit: Duration,
    pub budgets: ReviewBudgets,
    pub sandbox: SandboxSettings,
    /// How overlays are rendered inside the review process.
    pub render: crate::render::review::RenderOptions,
    /// The view store the review processes share, if any.
    pub views: Option<crate::views::StoreSettings>,
}

/// The commits a review needs, as the forge names them.
#[derive(Debug, Clone)]
pub struct Commits {
    pub head: String,
    /// The forge's merge-base: the diff we review is the diff it shows.
    pub merge_base: String,
    /// Where policy and CODEOWNERS are read; the merge-base when it cannot be fetched.
    pub base_tip: String,
}

/// A final answer for the check or status: a published plan says its own, the rest say this.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub conclusion: Conclusion,
    pub title: String,
    pub summary: String,
}

impl ReviewFailure {
    /// How a review that produced no plan concludes; `None` when it is to be retried.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            ReviewFailure::Config(message) => Some(Verdict {
                conclusion: Conclusion::Failure,
                title: "Invalid kubeward configuration".into(),
                summary: format!(
                    "The policy on the base branch cannot be read:\n\n```\n{message}\n```"
                ),
            }),
            ReviewFailure::Incomplete {
                title,
                summary,
                policy,
            } => {
                // The policy was not read (a fetch over its cap): nothing relaxes the default.
                let policy = policy.unwrap_or_default();
                let (conclusion, effect) = match policy {
                    Incomplete::Failure => (
                        Conclusion::Failure,
                        "An incomplete review fails (the policy's `incomplete: failure`, the default).",
                    ),
                    Incomplete::Neutral => (
                        Conclusion::Neutral,
                        "The policy's `incomplete: neutral` makes this check neutral.",
                    ),
                };
                Some(Verdict {
                    conclusion,
                    title: title.clone(),
                    summary: format!("{summary}\n\n{effect}"),
                })
            }
            ReviewFailure::Crashed(message) => Some(Verdict {
                conclusion: Conclusion::Failure,
                title: "kubeward could not review this change".into(),
                summary: format!(
                    "The review process crashed and is not retried (the same change would crash it again):\n\n```\n{message}\n```"
                ),
            }),
            ReviewFailure::Other(_) => None,
        }
    }
}

/// Fetches and reviews a change: the one review step of both bots. `fetch` says what to
/// fetch (asking the forge for a token, say); it runs under the time limit too.
pub async fn fetch_and_review(
    cache: Arc<GitCache>,
    key: CacheKey,
    fetch: impl Future<Output = Result<FetchPlan, ReviewFailure>>,
    commits: Commits,
    forge: Flavor,
    limits: &ReviewLimits,
) -> Result<ReviewPlan, ReviewFailure> {
    let started = Instant::now();
    // Reviews are CPU work: one per spare core, so webhooks are still answered at once.
    let _slot = super::runner::review_slot().await;
    let budget = Arc::new(FetchBudget::new(limits.max_fetch_bytes));
    // Dropped with this future when the job is given up: its fetch stops.
    let _abandon = AbandonOnDrop(budget.clone());
    let fetched = async {
        let fetch = fetch.await?;
        let depth = fetch.url.starts_with("http").then_some(limits.fetch_depth);
        let commits = commits.clone();
        let budget = budget.clone();
        tokio::task::spawn_blocking(move || {
            fetch_commits(&cache, &key, &fetch, &commits, depth, &budget)
        })
        .await
        .map_err(|e| ReviewFailure::Other(format!("the fetch task failed: {e}")))?
    };
    let (cached, base_tip) = match tokio::time::timeout(limits.time_limit, fetched).await {
        Err(_) => return Err(time_limit(limits, None)),
        Ok(result) => result?,
    };
    stage("fetch", started.elapsed());
    let request = ChildRequest {
        git_dir: cached.repo.inner().path().to_path_buf(),
        merge_base: commits.merge_base.clone(),
        head: commits.head.clone(),
        base_tip,
        forge,
        budgets: limits.budgets,
        render: limits.render.clone(),
        task: super::sandbox::ChildTask::Review,
        views: limits.views.clone(),
    };
    let left = limits.time_limit.saturating_sub(started.elapsed());
    // The cache stays locked (`cached`) while the child reads it.
    let reviewed = review_in_child(&limits.sandbox, &request, left).await;
    drop(cached);
    match reviewed {
        Ok((plan, timings)) => {
            stage("diff", Duration::from_secs_f64(timings.git));
            stage("parse", Duration::from_secs_f64(timings.parse));
            stage("audit", Duration::from_secs_f64(timings.audit));
            stage("plan", Duration::from_secs_f64(timings.plan));
            Ok(plan)
        }
        Err(failure) => Err(from_child(failure, limits)),
    }
}

/// The commit a snapshot is of, fetched into the cache, and the commits a review may have
/// covered it by (itself and its parents).
pub struct SnapshotFetched {
    pub answer: super::sandbox::SnapshotAnswer,
    pub commit: String,
    pub covering: Vec<String>,
}

/// Fetches the one commit `fetch` names into `refs/kubeward/snapshot` (shallow over HTTP) and
/// audits it whole in a review process: a default-branch snapshot, under the review's time
/// limit, byte budget and sandbox.
pub async fn fetch_and_snapshot(
    cache: Arc<GitCache>,
    key: CacheKey,
    fetch: FetchPlan,
    forge: Flavor,
    limits: &ReviewLimits,
) -> Result<SnapshotFetched, ReviewFailure> {
    let started = Instant::now();
    let _slot = super::runner::review_slot().await;
    let budget = Arc::new(FetchBudget::new(limits.max_fetch_bytes));
    let _abandon = AbandonOnDrop(budget.clone());
    let depth = fetch.url.starts_with("http").then_some(1);
    let fetched = {
        let budget = budget.clone();
        tokio::task::spawn_blocking(move || {
            let cached = cache
                .open(&key)
                .map_err(|e| ReviewFailure::Other(e.to_string()))?;
            let credentials = fetch
                .credentials
                .as_ref()
                .map(|(user, password)| (user.as_str(), password.expose()));
            cached
                .fetch(&FetchRequest {
                    url: &fetch.url,
                    refspecs: &fetch.refspecs,
                    credentials,
                    depth,
                    budget: &budget,
                })
                .map_err(from_fetch)?;
            let commit = cached.ref_target(SNAPSHOT_REF).ok_or_else(|| {
                ReviewFailure::Other("the snapshot's commit was not fetched".into())
            })?;
            // A shallow commit still names its parents.
            let parents: Vec<String> = cached
                .repo
                .inner()
                .find_commit(commit)
                .map(|c| c.parent_ids().map(|p| p.to_string()).collect())
                .unwrap_or_default();
            Ok::<_, ReviewFailure>((cached, commit.to_string(), parents))
        })
    };
    let (cached, commit, parents) = match tokio::time::timeout(limits.time_limit, fetched).await {
        Err(_) => return Err(time_limit(limits, None)),
        Ok(joined) => {
            joined.map_err(|e| ReviewFailure::Other(format!("the fetch task failed: {e}")))??
        }
    };
    stage("fetch", started.elapsed());
    let request = ChildRequest {
        git_dir: cached.repo.inner().path().to_path_buf(),
        merge_base: commit.clone(),
        head: commit.clone(),
        base_tip: commit.clone(),
        forge,
        budgets: limits.budgets,
        render: limits.render.clone(),
        task: super::sandbox::ChildTask::Snapshot,
        views: None,
    };
    let left = limits.time_limit.saturating_sub(started.elapsed());
    let answer = super::sandbox::snapshot_in_child(&limits.sandbox, &request, left).await;
    drop(cached);
    let answer = answer.map_err(|failure| from_child(failure, limits))?;
    let mut covering = vec![commit.clone()];
    covering.extend(parents);
    Ok(SnapshotFetched {
        answer,
        commit,
        covering,
    })
}

/// Where a snapshot's commit is fetched to in the cache.
pub const SNAPSHOT_REF: &str = "refs/kubeward/snapshot";

fn time_limit(limits: &ReviewLimits, policy: Option<Incomplete>) -> ReviewFailure {
    ReviewFailure::Incomplete {
        title: "Incomplete: time limit reached".into(),
        summary: format!(
            "The review did not finish within its time limit ({} s), so this change was not judged. Push again or comment `/kubeward rescan` to retry; a change this heavy may need to be split.",
            limits.time_limit.as_secs()
        ),
        policy,
    }
}

fn from_child(failure: ChildFailure, limits: &ReviewLimits) -> ReviewFailure {
    match failure {
        ChildFailure::Config(message) => ReviewFailure::Config(message),
        ChildFailure::TimeLimit { incomplete } => time_limit(limits, incomplete),
        ChildFailure::OutOfMemory { incomplete } => ReviewFailure::Incomplete {
            title: "Could not review: the review ran out of memory".into(),
            summary: format!(
                "The review process reached its memory limit ({} MiB) and was stopped, so this change was not judged. Split the change, or ask the operator to raise `review.memoryLimitBytes`.",
                limits.sandbox.memory_bytes >> 20
            ),
            policy: incomplete,
        },
        ChildFailure::OutputTooLarge { incomplete } => ReviewFailure::Incomplete {
            title: "Could not review: the result is too large".into(),
            summary: format!(
                "The review's result is larger than {} MiB, so it was not published. Split the change.",
                limits.sandbox.max_output_bytes >> 20
            ),
            policy: incomplete,
        },
        ChildFailure::Crashed(message) => ReviewFailure::Crashed(message),
        ChildFailure::Error(message) => ReviewFailure::Other(message),
    }
}

/// Fetches what the review needs into the locked cache; returns the cache, still locked,
/// and the commit to read policy at.
fn fetch_commits(
    cache: &GitCache,
    key: &CacheKey,
    fetch: &FetchPlan,
    commits: &Commits,
    depth: Option<i32>,
    budget: &FetchBudget,
) -> Result<(crate::git::cache::CachedRepo, String), ReviewFailure> {
    let cached = cache
        .open(key)
        .map_err(|e| ReviewFailure::Other(e.to_string()))?;
    let credentials = fetch
        .credentials
        .as_ref()
        .map(|(user, password)| (user.as_str(), password.expose()));
    let run = |specs: &[String], depth: Option<i32>| {
        cached
            .fetch(&FetchRequest {
                url: &fetch.url,
                refspecs: specs,
                credentials,
                depth,
                budget,
            })
            .map_err(from_fetch)
    };
    run(&fetch.refspecs, depth)?;
    let has = |sha: &str| {
        git2::Oid::from_str(sha)
            .ok()
            .is_some_and(|oid| cached.repo.inner().find_commit(oid).is_ok())
    };
    // The merge-base may lie below the shallow boundary, and the base branch may have moved
    // on: fetch exactly those commits.
    if !has(&commits.merge_base) {
        run(
            &[format!("+{}:refs/kubeward/merge-base", commits.merge_base)],
            depth.map(|_| 1),
        )?;
    }
    if !has(&commits.base_tip) && git2::Oid::from_str(&commits.base_tip).is_ok() {
        // Without it, policy is read at the merge-base; only a cap ends the review here.
        let spec = [format!("+{}:refs/kubeward/base-tip", commits.base_tip)];
        if let Err(e @ ReviewFailure::Incomplete { .. }) = run(&spec, depth.map(|_| 1)) {
            return Err(e);
        }
    }
    for sha in [&commits.head, &commits.merge_base] {
        if !has(sha) {
            return Err(ReviewFailure::Other(format!(
                "commit {sha} is not in the fetched history"
            )));
        }
    }
    let base_tip = if has(&commits.base_tip) {
        commits.base_tip.clone()
    } else {
        commits.merge_base.clone()
    };
    Ok((cached, base_tip))
}

/// A fetch over the byte cap leaves the change unjudged; other fetch errors may be retried.
fn from_fetch(error: crate::git::GitError) -> ReviewFailure {
    match error {
        crate::git::GitError::FetchTooLarge { .. } => ReviewFailure::Incomplete {
            title: "Incomplete: too large to fetch".into(),
            summary: format!("{error}, so this change was not judged."),
            policy: None,
        },
        error => ReviewFailure::Other(error.to_string()),
    }
}

/// Records how long a stage of a review took.
pub(crate) fn stage(name: &'static str, elapsed: Duration) {
    metrics::histogram!("kubeward_job_duration_seconds", "stage" => name)
        .record(elapsed.as_secs_f64());
}
