//! Workers: claim a job, keep its lease alive, run it under a time cap, report the result.
//! A job that keeps failing ends dead-lettered and its check concluded, never looping; so does
//! one whose attempts keep crashing (the queue hands it out once more, only to conclude it).
//! A job stopped by a spent write budget is deferred to when the budget allows, holding no
//! worker meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use std::collections::HashMap;

use super::runner::{BotError, Cancel, JobOutcome, JobRunner};
use crate::queue::{DeferOutcome, FailOutcome, Job, Queue, now_ms};

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub lease: Duration,
    pub poll_interval: Duration,
    /// Wall-time cap per job.
    pub job_timeout: Duration,
    /// How long a shutting-down worker lets its current job finish before releasing it.
    pub shutdown_grace: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            lease: Duration::from_secs(60),
            // Work queued by this process wakes workers at once; this finds other replicas' work
            // and retries coming due.
            poll_interval: Duration::from_secs(2),
            job_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// The job runners by forge name (`github`, `gitlab`).
pub type Runners = Arc<HashMap<String, Arc<dyn JobRunner>>>;

/// Runs one worker until `shutdown` turns true.
pub async fn run(
    id: String,
    queue: Queue,
    runners: Runners,
    settings: WorkerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let job = match queue.claim(&id, settings.lease, now_ms()).await {
            Ok(job) => job,
            Err(e) => {
                warn!(worker = %id, error = %e, "cannot claim a job");
                None
            }
        };
        let Some(job) = job else {
            tokio::select! {
                _ = queue.wait_for_work(settings.poll_interval) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        };
        let delivery = job
            .payload
            .get("delivery")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .to_owned();
        let span = info_span!("job", job = job.id, forge = %job.forge, kind = %job.kind, repo = job.repo_id, pr = job.pr_number, delivery = %delivery);
        process(&id, &queue, &runners, &settings, job, &mut shutdown)
            .instrument(span)
            .await;
    }
}

/// Whose write budget a job's forge writes count against: its pull request's (every job of one
/// pull request shares one share), else the job's own.
fn review_key(job: &Job) -> String {
    match job.pr_number {
        Some(pr) => format!("{}:{}:{pr}", job.forge, job.repo_id),
        None => format!("{}:job:{}", job.forge, job.id),
    }
}

/// Keeps the lease of job `id` while the worker works on it; cancels `cancel` when the job is
/// superseded or dropped, or the lease is lost.
fn keep_lease(
    queue: &Queue,
    worker: &str,
    id: i64,
    lease: Duration,
    cancel: &Cancel,
) -> tokio::task::JoinHandle<()> {
    let queue = queue.clone();
    let worker = worker.to_owned();
    let cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            match queue.heartbeat(id, &worker, lease, now_ms()).await {
                Ok(beat) if !beat.held => {
                    cancel.cancel();
                    return;
                }
                Ok(beat) if beat.cancel_requested => cancel.cancel(),
                _ => {}
            }
        }
    })
}

async fn process(
    worker: &str,
    queue: &Queue,
    runners: &Runners,
    settings: &WorkerSettings,
    job: Job,
    shutdown: &mut watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    let Some(runner) = runners.get(&job.forge).cloned() else {
        warn!(forge = %job.forge, "no runner for this forge");
        let message = format!("no runner for forge `{}`", job.forge);
        let _ = queue.fail(job.id, worker, &message, now_ms()).await;
        return;
    };
    let cancel = Cancel::default();
    if job.cancel_requested {
        cancel.cancel();
    }
    // Keep the lease while we work; learn about supersession.
    let heartbeat = keep_lease(queue, worker, job.id, settings.lease, &cancel);
    if job.conclude_only {
        conclude_crashed(worker, queue, runner.as_ref(), &job).await;
        heartbeat.abort();
        return;
    }
    let last_attempt = job.attempts >= i64::from(queue.config().max_attempts);
    let run = tokio::time::timeout(
        settings.job_timeout,
        crate::forge::budget::for_review(
            review_key(&job),
            runner.run_job(&job.payload, &cancel, last_attempt),
        ),
    );
    let result = tokio::select! {
        result = run => Some(result),
        _ = wait_for_shutdown(shutdown, settings.shutdown_grace) => None,
    };
    heartbeat.abort();
    let elapsed = started.elapsed();
    metrics::histogram!("kubeward_job_duration_seconds", "stage" => "total")
        .record(elapsed.as_secs_f64());
    match result {
        None => {
            info!("shutting down: the job goes back to the queue");
            let _ = queue.release(job.id, worker).await;
        }
        Some(Ok(Ok(JobOutcome::HandOff { jobs, why }))) => {
            // All follow-ups in one transaction, recorded under this job's id: if this job runs
            // again (a failed completion, a lost lease), it hands off nothing twice.
            let key = format!("handoff:{}", job.id);
            match queue.enqueue_delivery(&job.forge, &key, jobs).await {
                Ok(Some(ids)) => info!(reason = %why, jobs = ?ids, "handed off"),
                Ok(None) => info!(reason = %why, "already handed off"),
                Err(e) => {
                    let error = format!("cannot queue the follow-ups: {e}");
                    fail(queue, worker, &job, &error).await;
                    return;
                }
            }
            metrics::counter!("kubeward_jobs_total", "outcome" => "done").increment(1);
            let _ = queue.complete(job.id, worker).await;
        }
        Some(Ok(Ok(JobOutcome::Snapshot {
            mut snapshot,
            covering,
        }))) => {
            let stored = async {
                snapshot.reviewed = queue
                    .commit_reviewed(&snapshot.forge, snapshot.repo_id, &covering)
                    .await?;
                queue.record_snapshot_of_job(&snapshot, job.id).await
            };
            match stored.await {
                Ok(outcome) if outcome.discarded => {
                    info!(commit = %snapshot.commit, "snapshot not stored: superseded, or the repository left");
                    metrics::counter!("kubeward_jobs_total", "outcome" => "done").increment(1);
                    let _ = queue.complete(job.id, worker).await;
                }
                Ok(outcome) => {
                    info!(commit = %snapshot.commit, added = outcome.added, removed = outcome.removed, moved = outcome.moved, reviewed = snapshot.reviewed, "snapshot stored");
                    metrics::counter!("kubeward_jobs_total", "outcome" => "done").increment(1);
                    let _ = queue.complete(job.id, worker).await;
                }
                Err(e) => {
                    fail(
                        queue,
                        worker,
                        &job,
                        &format!("cannot store the snapshot: {e}"),
                    )
                    .await
                }
            }
        }
        Some(Ok(Ok(outcome))) => {
            match &outcome {
                JobOutcome::Published {
                    conclusion,
                    published_id,
                    review,
                } => {
                    if let Some(review) = review
                        && let Err(e) = queue.record_review_outcome(review).await
                    {
                        // The review is published; only the platform team's numbers lack it.
                        warn!(error = %e, "cannot record the review's outcome");
                    }
                    info!(conclusion = %conclusion, published = published_id, ms = elapsed.as_millis() as u64, "published")
                }
                JobOutcome::Skipped(why) => info!(reason = %why, "skipped"),
                JobOutcome::HandOff { .. } | JobOutcome::Snapshot { .. } => {}
            }
            metrics::counter!("kubeward_jobs_total", "outcome" => "done").increment(1);
            let _ = queue.complete(job.id, worker).await;
        }
        Some(Ok(Err(e))) => match e.retry_after() {
            Some(wait) => defer(worker, queue, runner.as_ref(), &job, wait, &e).await,
            None => fail(queue, worker, &job, &e.to_string()).await,
        },
        Some(Err(_)) => {
            let error = format!(
                "the job hit its {}s time limit",
                settings.job_timeout.as_secs()
            );
            // Cut off from outside, the runner concluded nothing; a retry would reuse its
            // check, but a job that will not be retried must not leave one pending. Concluded
            // while the job still holds its pull request, so no newer job's result on the same
            // check run can be overwritten.
            if last_attempt {
                // Logged inside; the job's own error is what gets recorded.
                let _ = conclude_abandoned(runner.as_ref(), &job, &error).await;
            }
            fail(queue, worker, &job, &error).await;
        }
    }
}

/// A job out of attempts whose last one crashed (its worker died, its lease ran out): not run
/// again, which would likely crash again, but its pending check or status concluded as a
/// failure saying so, and the job given up.
async fn conclude_crashed(worker: &str, queue: &Queue, runner: &dyn JobRunner, job: &Job) {
    let reason = format!(
        "the review crashed or its worker died {}",
        times(job.lease_expiries)
    );
    warn!(
        crashes = job.lease_expiries,
        "a job out of attempts crashed: concluding it"
    );
    let concluded = conclude_abandoned(runner, job, &reason).await;
    let mut error = match &concluded {
        Ok(()) => format!("{reason}; its check was concluded as a failure"),
        Err(e) => format!("{reason}; concluding its check failed: {e}"),
    };
    if let Some(previous) = &job.last_error {
        error.push_str(&format!("; previous error: {previous}"));
    }
    if let Err(e) = &concluded
        && let Some(wait) = e.retry_after()
    {
        // Only the write budget is in the way: conclude when it allows.
        defer(worker, queue, runner, job, wait, e).await;
        return;
    }
    give_up(queue, worker, job, &error).await;
}

/// Puts a job stopped by a spent write budget back in line until the budget allows. Past the
/// queue's deferral bounds, its check is concluded as a failure saying so, and it is given up.
async fn defer(
    worker: &str,
    queue: &Queue,
    runner: &dyn JobRunner,
    job: &Job,
    wait: Duration,
    error: &BotError,
) {
    let now = now_ms();
    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    let run_at = now.saturating_add(wait_ms);
    let reason = format!("deferred for {} s: {error}", wait.as_secs());
    match queue.defer(job.id, worker, run_at, &reason, now).await {
        Ok(DeferOutcome::Deferred {
            run_at_ms,
            deferrals,
        }) => {
            info!(
                deferrals,
                wait_ms = run_at_ms.saturating_sub(now),
                error = %error,
                "waiting for the write budget: the job goes back to the queue"
            );
            metrics::counter!("kubeward_jobs_total", "outcome" => "deferred").increment(1);
        }
        Ok(DeferOutcome::LimitReached {
            deferrals,
            deferred_ms,
        }) => {
            let minutes = deferred_ms / 60_000;
            let reason = format!(
                "the write budget stayed spent: the review waited for the forge's rate limits {} \
                 over {minutes} min, longer than kubeward waits",
                times(deferrals)
            );
            warn!(
                deferrals,
                minutes, "a job waited too long for the write budget"
            );
            let error = match conclude_abandoned(runner, job, &reason).await {
                Ok(()) => format!("{reason}; its check was concluded as a failure"),
                Err(e) => format!("{reason}; concluding its check failed: {e}"),
            };
            give_up(queue, worker, job, &error).await;
        }
        Ok(DeferOutcome::Canceled { state }) => {
            info!(%state, "superseded or dropped while waiting for the write budget")
        }
        Ok(DeferOutcome::NotHeld) => warn!("the job was lost before it could be deferred"),
        Err(e) => warn!(error = %e, "cannot defer the job"),
    }
}

/// "once", "2 times"...
fn times(n: i64) -> String {
    match n {
        1 => "once".to_owned(),
        n => format!("{n} times"),
    }
}

/// Has the runner conclude what a job it cannot finish left pending (within a time limit).
async fn conclude_abandoned(
    runner: &dyn JobRunner,
    job: &Job,
    reason: &str,
) -> Result<(), BotError> {
    let conclude = crate::forge::budget::for_review(
        review_key(job),
        runner.conclude_abandoned(&job.payload, reason),
    );
    let outcome = match tokio::time::timeout(ABANDON_TIME_LIMIT, conclude).await {
        Ok(outcome) => outcome,
        Err(_) => Err(BotError::Review(
            "concluding what the given-up job left pending took too long".into(),
        )),
    };
    if let Err(e) = &outcome {
        warn!(error = %e, "cannot conclude what the given-up job left pending");
    }
    outcome
}

async fn give_up(queue: &Queue, worker: &str, job: &Job, error: &str) {
    match queue.give_up(job.id, worker, error, now_ms()).await {
        Ok(FailOutcome::Dead { attempts }) => {
            warn!(attempts, error, "job given up: dead-lettered");
            metrics::counter!("kubeward_jobs_total", "outcome" => "dead").increment(1);
        }
        Ok(outcome) => info!(?outcome, error, "job given up"),
        Err(e) => warn!(error = %e, "cannot record that the job was given up"),
    }
}

/// How long concluding a given-up job's check or status may take.
const ABANDON_TIME_LIMIT: Duration = Duration::from_secs(60);

async fn fail(queue: &Queue, worker: &str, job: &Job, error: &str) {
    match queue.fail(job.id, worker, error, now_ms()).await {
        Ok(FailOutcome::Dead { attempts }) => {
            warn!(attempts, error, "job failed for good: dead-lettered");
            metrics::counter!("kubeward_jobs_total", "outcome" => "dead").increment(1);
        }
        Ok(outcome) => {
            warn!(?outcome, error, "job failed; it will be retried");
            metrics::counter!("kubeward_jobs_total", "outcome" => "retry").increment(1);
        }
        Err(e) => warn!(error = %e, "cannot record the failure"),
    }
}

async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>, grace: Duration) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    tokio::time::sleep(grace).await;
}
