//! Durable job queue for the bot: webhook deliveries become jobs that survive restarts.
//!
//! Forge-neutral: a job is a handful of indexed columns (forge, repo, PR, head) plus an opaque
//! JSON payload. Workers `claim` jobs under a time-limited lease and `heartbeat` to keep it, so a
//! crashed worker's job is taken over once its lease runs out. Failures retry with jittered
//! exponential backoff and end in a `dead` letter state. A job that only has to wait for a
//! forge's write budget is `defer`red instead: back in line with a not-before time, the attempt
//! not counted.
//!
//! Times that drive scheduling (`now_ms`, `run_at_ms`, leases) are passed in, so tests control
//! the clock; bookkeeping timestamps (created/updated/finished, delivery receipt) use [`now_ms`].
//!
//! The default backend is SQLite (one process); PostgreSQL lets several replicas share one
//! queue. All SQL lives in the backend modules (`sqlite.rs`, `postgres.rs`), which give every
//! method the same semantics; the URL's scheme picks one.

mod error;
pub mod ownership;
mod postgres;
mod sql;
mod sqlite;
mod types;

use std::time::Duration;

pub use error::QueueError;
pub use types::{
    DeferOutcome, DropOutcome, EnqueueOutcome, FailOutcome, Heartbeat, Job, JobState, NewJob,
    PruneOutcome, QueueConfig, QueueStats, UnknownJobState,
};

/// Longest `last_error` kept; a whole HTTP body or backtrace must not bloat the table.
pub const MAX_ERROR_LEN: usize = 8 * 1024;

/// Wall-clock epoch milliseconds: what callers pass as `now_ms` outside tests.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The storage behind a [`Queue`]; one variant per database.
#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::SqliteBackend),
    Postgres(postgres::PostgresBackend),
}

/// Handle to the queue. Cheap to clone (a connection pool inside); share one per process.
#[derive(Debug, Clone)]
pub struct Queue {
    backend: Backend,
    config: QueueConfig,
    /// Wakes this process's idle workers when it queues work, so they need not poll often.
    work: std::sync::Arc<tokio::sync::Notify>,
}

impl Queue {
    /// Opens (creating if needed) and migrates the queue at `url`, with the default [`QueueConfig`].
    ///
    /// `sqlite://path/to/queue.db` (created if missing, WAL) or `sqlite::memory:` (tests), or
    /// `postgres://user:password@host:port/database` (also `postgresql://`, libpq-style query
    /// parameters such as `sslmode`) for a queue shared by several replicas. Errors never
    /// quote the URL, so its password does not reach logs.
    pub async fn connect(url: &str) -> Result<Queue, QueueError> {
        Queue::connect_with(url, QueueConfig::default()).await
    }

    /// [`Queue::connect`] with an explicit retry policy.
    pub async fn connect_with(url: &str, config: QueueConfig) -> Result<Queue, QueueError> {
        config.validate()?;
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        let backend = match scheme {
            "sqlite" => Backend::Sqlite(sqlite::SqliteBackend::connect(url).await?),
            "postgres" | "postgresql" => {
                Backend::Postgres(postgres::PostgresBackend::connect(url).await?)
            }
            _ => {
                return Err(QueueError::UnsupportedBackend {
                    // Only the scheme: the rest of a URL may hold credentials.
                    scheme: scheme.chars().take(32).collect(),
                    hint: "expected sqlite://PATH, sqlite::memory: or postgres://HOST/DATABASE",
                });
            }
        };
        Ok(Queue {
            backend,
            config,
            work: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Replaces the retry policy of this handle (clones keep theirs).
    pub fn with_config(mut self, config: QueueConfig) -> Result<Queue, QueueError> {
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Remembers a webhook delivery; true if it is new, false if this forge sent it before
    /// (a redelivery, to be acknowledged and ignored).
    pub async fn record_delivery(
        &self,
        forge: &str,
        delivery_id: &str,
    ) -> Result<bool, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.record_delivery(forge, delivery_id, now_ms()).await,
            Backend::Postgres(b) => b.record_delivery(forge, delivery_id, now_ms()).await,
        }
    }

    /// Whether this forge's delivery was recorded, without recording it (e.g. to decide
    /// whether to ask the forge to redeliver a failed one).
    pub async fn delivery_seen(&self, forge: &str, delivery_id: &str) -> Result<bool, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.delivery_seen(forge, delivery_id).await,
            Backend::Postgres(b) => b.delivery_seen(forge, delivery_id).await,
        }
    }

    /// Stores a job. With `supersedes`, older queued jobs of the same PR become `superseded`
    /// and running ones get `cancel_requested`, in the same transaction as the insert.
    pub async fn enqueue(&self, job: NewJob) -> Result<EnqueueOutcome, QueueError> {
        let payload = prepare(&job)?;
        let outcome = match &self.backend {
            Backend::Sqlite(b) => b.enqueue(&job, &payload, now_ms()).await,
            Backend::Postgres(b) => b.enqueue(&job, &payload, now_ms()).await,
        };
        // One idle worker per new job, not all of them (no herd on the database).
        self.work.notify_one();
        outcome
    }

    /// Waits until this process queues work, or `timeout` passes (work queued by other
    /// replicas is found by the next claim after the timeout).
    pub async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.work.notified()).await;
    }

    /// Records a webhook delivery and enqueues its jobs in one transaction: `None` if the
    /// delivery was already recorded (nothing is enqueued), else the new job ids in order.
    ///
    /// One transaction, so a crash between the two cannot mark a delivery seen whose jobs were
    /// lost (the redelivery would then be ignored) or queue them twice.
    pub async fn enqueue_delivery(
        &self,
        forge: &str,
        delivery_id: &str,
        jobs: Vec<NewJob>,
    ) -> Result<Option<Vec<i64>>, QueueError> {
        let jobs = jobs
            .into_iter()
            .map(|job| prepare(&job).map(|payload| (job, payload)))
            .collect::<Result<Vec<_>, _>>()?;
        let outcome = match &self.backend {
            Backend::Sqlite(b) => {
                b.enqueue_delivery(forge, delivery_id, &jobs, now_ms())
                    .await
            }
            Backend::Postgres(b) => {
                b.enqueue_delivery(forge, delivery_id, &jobs, now_ms())
                    .await
            }
        };
        // One idle worker per new job, not all of them (no herd on the database).
        self.work.notify_one();
        outcome
    }

    /// Takes the oldest runnable job for `worker_id` until `now_ms + lease`, counting an attempt.
    ///
    /// Runnable: `queued` with `run_at <= now_ms`, or `running` with an expired lease (its worker
    /// died). A job whose last attempt ended that way is handed out once more with
    /// [`Job::conclude_only`] set: its worker concludes the check or status the job left pending
    /// and gives it up, so a job that keeps crashing its worker neither loops forever nor
    /// leaves a required check in progress. Expired jobs that were cancel-requested, or whose
    /// concluding worker died too, are finalized (superseded/dropped, or dead) instead.
    pub async fn claim(
        &self,
        worker_id: &str,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Option<Job>, QueueError> {
        let lease_until = now_ms.saturating_add(duration_ms(lease));
        let max_attempts = i64::from(self.config.max_attempts);
        let job = match &self.backend {
            Backend::Sqlite(b) => b.claim(worker_id, lease_until, max_attempts, now_ms).await,
            Backend::Postgres(b) => b.claim(worker_id, lease_until, max_attempts, now_ms).await,
        }?;
        Ok(job.map(|mut job| {
            // Only a job out of attempts gets a claim past them (see above).
            job.conclude_only = job.attempts > max_attempts;
            job
        }))
    }

    /// Extends the lease if `worker_id` still holds job `id`; also reports cancellation.
    pub async fn heartbeat(
        &self,
        id: i64,
        worker_id: &str,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Heartbeat, QueueError> {
        let lease_until = now_ms.saturating_add(duration_ms(lease));
        match &self.backend {
            Backend::Sqlite(b) => b.heartbeat(id, worker_id, lease_until, now_ms).await,
            Backend::Postgres(b) => b.heartbeat(id, worker_id, lease_until, now_ms).await,
        }
    }

    /// Marks a held job `done`. False if the worker no longer held it (its result is stale).
    pub async fn complete(&self, id: i64, worker_id: &str) -> Result<bool, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.complete(id, worker_id, now_ms()).await,
            Backend::Postgres(b) => b.complete(id, worker_id, now_ms()).await,
        }
    }

    /// Records a failed attempt: retry after a jittered backoff, or dead-letter once
    /// `max_attempts` claims have failed. A cancel-requested job is not retried.
    pub async fn fail(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        let error = truncate(error, MAX_ERROR_LEN);
        match &self.backend {
            Backend::Sqlite(b) => b.fail(id, worker_id, error, &self.config, now_ms).await,
            Backend::Postgres(b) => b.fail(id, worker_id, error, &self.config, now_ms).await,
        }
    }

    /// Dead-letters a held job at once, whatever attempts it has left (it waited too long for
    /// a write budget, or it is out of attempts and its check was concluded). A cancel-requested
    /// job takes its terminal state instead.
    pub async fn give_up(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        let error = truncate(error, MAX_ERROR_LEN);
        match &self.backend {
            Backend::Sqlite(b) => b.give_up(id, worker_id, error, now_ms).await,
            Backend::Postgres(b) => b.give_up(id, worker_id, error, now_ms).await,
        }
    }

    /// Puts a held job back in line until `run_at_ms` without counting its attempt: it could
    /// not go on because a write budget is spent (the forge's rate limit, or its share of the
    /// installation's), and waiting holds no worker. `reason` is kept as its last error. A
    /// cancel-requested job takes its terminal state instead; a newer push supersedes a
    /// deferred job like any queued one.
    ///
    /// Past [`QueueConfig::max_deferrals`] deferrals, or [`QueueConfig::max_deferred_ms`]
    /// after the first, nothing changes and [`DeferOutcome::LimitReached`] says so: the worker
    /// concludes the job's check, saying why, and gives the job up.
    pub async fn defer(
        &self,
        id: i64,
        worker_id: &str,
        run_at_ms: i64,
        reason: &str,
        now_ms: i64,
    ) -> Result<DeferOutcome, QueueError> {
        let reason = truncate(reason, MAX_ERROR_LEN);
        match &self.backend {
            Backend::Sqlite(b) => {
                b.defer(id, worker_id, run_at_ms, reason, &self.config, now_ms)
                    .await
            }
            Backend::Postgres(b) => {
                b.defer(id, worker_id, run_at_ms, reason, &self.config, now_ms)
                    .await
            }
        }
    }

    /// Gives a held job back without counting the attempt (graceful shutdown). A
    /// cancel-requested job goes to its terminal state instead. False if not held.
    pub async fn release(&self, id: i64, worker_id: &str) -> Result<bool, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.release(id, worker_id, now_ms()).await,
            Backend::Postgres(b) => b.release(id, worker_id, now_ms()).await,
        }
    }

    /// The PR was closed or merged: its queued jobs are `dropped`, running ones cancel-requested.
    pub async fn drop_pr(
        &self,
        forge: &str,
        repo_id: i64,
        pr_number: i64,
    ) -> Result<DropOutcome, QueueError> {
        self.drop_jobs(forge, DropScope::Pr { repo_id, pr_number })
            .await
    }

    /// The app was uninstalled: like [`Queue::drop_pr`] for every job of the installation.
    pub async fn drop_installation(
        &self,
        forge: &str,
        installation_id: i64,
    ) -> Result<DropOutcome, QueueError> {
        self.drop_jobs(forge, DropScope::Installation(installation_id))
            .await
    }

    /// The repository left the installation (or was deleted): like [`Queue::drop_pr`] for
    /// every job of the repository.
    pub async fn drop_repository(
        &self,
        forge: &str,
        repo_id: i64,
    ) -> Result<DropOutcome, QueueError> {
        self.drop_jobs(forge, DropScope::Repository(repo_id)).await
    }

    async fn drop_jobs(&self, forge: &str, scope: DropScope) -> Result<DropOutcome, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.drop_jobs(forge, scope, now_ms()).await,
            Backend::Postgres(b) => b.drop_jobs(forge, scope, now_ms()).await,
        }
    }

    /// Records which PR a head commit belongs to: a check-run re-request from a fork carries
    /// only the SHA, and the forge will not say which PR it came from.
    pub async fn remember_pr_head(
        &self,
        forge: &str,
        repo_id: i64,
        head_sha: &str,
        pr_number: i64,
    ) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => {
                b.remember_pr_head(forge, repo_id, head_sha, pr_number, now_ms())
                    .await
            }
            Backend::Postgres(b) => {
                b.remember_pr_head(forge, repo_id, head_sha, pr_number, now_ms())
                    .await
            }
        }
    }

    /// Every PR remembered with `head_sha` as its head, in number order.
    pub async fn prs_for_head(
        &self,
        forge: &str,
        repo_id: i64,
        head_sha: &str,
    ) -> Result<Vec<i64>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.prs_for_head(forge, repo_id, head_sha).await,
            Backend::Postgres(b) => b.prs_for_head(forge, repo_id, head_sha).await,
        }
    }

    /// Counts for metrics, as of `now_ms`.
    pub async fn stats(&self, now_ms: i64) -> Result<QueueStats, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.stats(now_ms).await,
            Backend::Postgres(b) => b.stats(now_ms).await,
        }
    }

    /// Stores a default-branch snapshot as its changes since the repository's previous one
    /// ([`ownership::NewSnapshot`]).
    pub async fn record_snapshot(
        &self,
        snapshot: &ownership::NewSnapshot,
    ) -> Result<ownership::SnapshotOutcome, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.record_snapshot(snapshot, None).await,
            Backend::Postgres(b) => b.record_snapshot(snapshot, None).await,
        }
    }

    /// [`Queue::record_snapshot`] for job `job_id`: stores nothing (`discarded`) once the job
    /// was superseded by a newer push or dropped with its repository.
    pub async fn record_snapshot_of_job(
        &self,
        snapshot: &ownership::NewSnapshot,
        job_id: i64,
    ) -> Result<ownership::SnapshotOutcome, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.record_snapshot(snapshot, Some(job_id)).await,
            Backend::Postgres(b) => b.record_snapshot(snapshot, Some(job_id)).await,
        }
    }

    /// A repository's open findings now (its latest snapshot).
    pub async fn open_findings(
        &self,
        forge: &str,
        repo_id: i64,
    ) -> Result<Vec<crate::ownership::OwnedFinding>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.open_findings(forge, repo_id).await,
            Backend::Postgres(b) => b.open_findings(forge, repo_id).await,
        }
    }

    /// A repository's snapshots, oldest first.
    pub async fn snapshots(
        &self,
        forge: &str,
        repo_id: i64,
    ) -> Result<Vec<ownership::SnapshotRecord>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.snapshots(forge, repo_id).await,
            Backend::Postgres(b) => b.snapshots(forge, repo_id).await,
        }
    }

    /// The findings a snapshot held, rebuilt from its checkpoint and deltas.
    pub async fn findings_at(
        &self,
        forge: &str,
        repo_id: i64,
        snapshot_id: i64,
    ) -> Result<Vec<crate::ownership::OwnedFinding>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.findings_at(forge, repo_id, snapshot_id).await,
            Backend::Postgres(b) => b.findings_at(forge, repo_id, snapshot_id).await,
        }
    }

    /// Folds the deltas of snapshots older than `before_ms` into a checkpoint per repository.
    pub async fn fold_snapshots(&self, before_ms: i64) -> Result<usize, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.fold_snapshots(before_ms).await,
            Backend::Postgres(b) => b.fold_snapshots(before_ms).await,
        }
    }

    pub async fn record_review_outcome(
        &self,
        outcome: &ownership::ReviewOutcome,
    ) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.record_review_outcome(outcome).await,
            Backend::Postgres(b) => b.record_review_outcome(outcome).await,
        }
    }

    /// Records that a pull request closed; returns the findings that escaped with its merge.
    pub async fn record_pr_closed(
        &self,
        forge: &str,
        repo_id: i64,
        pr_number: i64,
        merged: bool,
        merge_commit_sha: Option<&str>,
        closed_at_ms: i64,
    ) -> Result<i64, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => {
                b.record_pr_closed(
                    forge,
                    repo_id,
                    pr_number,
                    merged,
                    merge_commit_sha,
                    closed_at_ms,
                )
                .await
            }
            Backend::Postgres(b) => {
                b.record_pr_closed(
                    forge,
                    repo_id,
                    pr_number,
                    merged,
                    merge_commit_sha,
                    closed_at_ms,
                )
                .await
            }
        }
    }

    /// Whether a review covered one of `commits`: a reviewed head, or the merge commit of a
    /// reviewed pull request.
    pub async fn commit_reviewed(
        &self,
        forge: &str,
        repo_id: i64,
        commits: &[String],
    ) -> Result<bool, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.commit_reviewed(forge, repo_id, commits).await,
            Backend::Postgres(b) => b.commit_reviewed(forge, repo_id, commits).await,
        }
    }

    /// The snapshots in [`since_ms`, `until_ms`), and each repository's latest before
    /// `since_ms`: one team's totals, or all
    /// open findings for `None` ([`crate::ownership::daily_trend`]).
    pub async fn trend_rows(
        &self,
        team: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ownership::TrendRow>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.trend_rows(team, since_ms, until_ms).await,
            Backend::Postgres(b) => b.trend_rows(team, since_ms, until_ms).await,
        }
    }

    /// Repositories whose latest snapshot was taken before `before_ms`.
    pub async fn repositories_due(
        &self,
        before_ms: i64,
    ) -> Result<Vec<ownership::SnapshotRepo>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.repositories_due(before_ms).await,
            Backend::Postgres(b) => b.repositories_due(before_ms).await,
        }
    }

    /// Deletes the ownership data of every repository an installation had.
    pub async fn delete_installation_data(
        &self,
        forge: &str,
        installation_id: i64,
    ) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.delete_installation_data(forge, installation_id).await,
            Backend::Postgres(b) => b.delete_installation_data(forge, installation_id).await,
        }
    }

    /// Deletes every snapshot, open finding and outcome of a repository.
    pub async fn delete_repository_data(
        &self,
        forge: &str,
        repo_id: i64,
    ) -> Result<(), QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.delete_repository_data(forge, repo_id).await,
            Backend::Postgres(b) => b.delete_repository_data(forge, repo_id).await,
        }
    }

    /// Open findings by team, rule and repository, unreviewed and escaped counts. With
    /// `window_start_ms`, each repository's teams also as they stood then (for a user who sees
    /// only some of them; [`Queue::teams_before_day`] has the sums over every repository).
    pub async fn ownership_overview(
        &self,
        escaped_since_ms: i64,
        window_start_ms: Option<i64>,
    ) -> Result<ownership::StoredOverview, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => {
                b.ownership_overview(escaped_since_ms, window_start_ms)
                    .await
            }
            Backend::Postgres(b) => {
                b.ownership_overview(escaped_since_ms, window_start_ms)
                    .await
            }
        }
    }

    /// A team's open findings at the end of each of the days `first_day..=last_day` (UTC
    /// days since the epoch) over every repository; `""` for every finding, each once.
    pub async fn daily_trend(
        &self,
        team: &str,
        first_day: i64,
        last_day: i64,
    ) -> Result<Vec<crate::ownership::TrendPoint>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.daily_trend(team, first_day, last_day).await,
            Backend::Postgres(b) => b.daily_trend(team, first_day, last_day).await,
        }
    }

    /// Every team's open findings over every repository at the end of the day before `day`.
    pub async fn teams_before_day(
        &self,
        day: i64,
    ) -> Result<Vec<ownership::GroupCount>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.teams_before_day(day).await,
            Backend::Postgres(b) => b.teams_before_day(day).await,
        }
    }

    /// The open findings of the `(forge, repo_id, team)` triples a user may see, each once,
    /// counted by repository, rule, severity, unreviewed and unowned.
    pub async fn visible_counts(
        &self,
        seen: &[(String, i64, String)],
    ) -> Result<Vec<ownership::VisibleCount>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.visible_counts(seen).await,
            Backend::Postgres(b) => b.visible_counts(seen).await,
        }
    }

    /// A team's open findings across repositories.
    pub async fn team_findings(
        &self,
        team: &str,
    ) -> Result<Vec<ownership::OpenFinding>, QueueError> {
        self.findings_of(ownership::FindingsOf::Team(team), None)
            .await
    }

    /// Open findings of a team, a rule or a repository, with where they are, danger first;
    /// `page` is `(limit, offset)`.
    pub async fn findings_of(
        &self,
        of: ownership::FindingsOf<'_>,
        page: Option<(u32, u32)>,
    ) -> Result<Vec<ownership::OpenFinding>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.findings_of(of, page).await,
            Backend::Postgres(b) => b.findings_of(of, page).await,
        }
    }

    /// A team's repositories, with its open findings in each at their latest snapshot.
    pub async fn team_repositories(
        &self,
        team: &str,
    ) -> Result<Vec<ownership::TeamRepository>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.team_repositories(team).await,
            Backend::Postgres(b) => b.team_repositories(team).await,
        }
    }

    /// `(repository, environment, severity, count)` of a team's open findings.
    pub async fn team_environments(
        &self,
        team: &str,
    ) -> Result<Vec<(String, String, crate::audit::Severity, i64)>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.team_environments(team).await,
            Backend::Postgres(b) => b.team_environments(team).await,
        }
    }

    /// What a team's reviews caught since `since_ms`, per repository.
    pub async fn team_reviews(
        &self,
        team: &str,
        since_ms: i64,
    ) -> Result<Vec<ownership::TeamReviews>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.team_reviews(team, since_ms).await,
            Backend::Postgres(b) => b.team_reviews(team, since_ms).await,
        }
    }

    /// One job by id.
    pub async fn get(&self, id: i64) -> Result<Option<Job>, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.get(id).await,
            Backend::Postgres(b) => b.get(id).await,
        }
    }

    /// Puts a dead job back in the queue with fresh attempts and deferrals (an operator fixed
    /// the cause).
    /// False if the job is not dead.
    pub async fn retry_dead(&self, id: i64, now_ms: i64) -> Result<bool, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.retry_dead(id, now_ms).await,
            Backend::Postgres(b) => b.retry_dead(id, now_ms).await,
        }
    }

    /// Deletes history older than `before_ms` (wall-clock epoch ms): deliveries, PR-head
    /// mappings, and finished jobs (`done`, `superseded`, `dropped`). Dead jobs are kept for
    /// an operator. Without pruning these tables only grow.
    pub async fn prune(&self, before_ms: i64) -> Result<PruneOutcome, QueueError> {
        match &self.backend {
            Backend::Sqlite(b) => b.prune(before_ms).await,
            Backend::Postgres(b) => b.prune(before_ms).await,
        }
    }
}

/// What a drop applies to.
#[derive(Debug, Clone, Copy)]
enum DropScope {
    Pr { repo_id: i64, pr_number: i64 },
    Installation(i64),
    Repository(i64),
}

/// Whether deferring a job once more, until `run_at_ms`, would pass the configured bounds: the
/// same decision on every backend.
fn deferral_limit(
    config: &QueueConfig,
    deferrals: i64,
    deferred_since_ms: Option<i64>,
    run_at_ms: i64,
    now_ms: i64,
) -> Option<DeferOutcome> {
    let since = deferred_since_ms.unwrap_or(now_ms);
    let max_ms = i64::try_from(config.max_deferred_ms).unwrap_or(i64::MAX);
    let over =
        deferrals >= i64::from(config.max_deferrals) || run_at_ms.saturating_sub(since) > max_ms;
    over.then(|| DeferOutcome::LimitReached {
        deferrals,
        deferred_ms: now_ms.saturating_sub(since).max(0),
    })
}

/// Checks a job before it is stored and serializes its payload.
fn prepare(job: &NewJob) -> Result<String, QueueError> {
    if job.supersedes && job.pr_number.is_none() {
        return Err(QueueError::Invalid(format!(
            "a `{}` job for repo {} supersedes but has no pr_number",
            job.kind, job.repo_id
        )));
    }
    serde_json::to_string(&job.payload)
        .map_err(|err| QueueError::Invalid(format!("payload is not serializable: {err}")))
}

/// Lease lengths in ms, saturating (a lease of years is a caller bug, not a reason to panic).
fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let config = QueueConfig::default().with_backoff(1_000, 10_000);
        assert_eq!(config.backoff_ceiling_ms(1), 1_000);
        assert_eq!(config.backoff_ceiling_ms(2), 2_000);
        assert_eq!(config.backoff_ceiling_ms(4), 8_000);
        assert_eq!(config.backoff_ceiling_ms(5), 10_000);
        assert_eq!(config.backoff_ceiling_ms(500), 10_000);
        assert_eq!(config.backoff_ceiling_ms(0), 1_000);
        for attempts in 1..10 {
            let delay = config.backoff_ms(attempts);
            let ceiling = config.backoff_ceiling_ms(attempts);
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay} vs {ceiling}"
            );
        }
    }

    #[test]
    fn job_state_round_trips() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("bogus".parse::<JobState>().is_err());
    }
}
