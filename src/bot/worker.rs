//! Workers: claim a job, keep its lease alive, run it under a time cap, report the result.
//! A job that keeps failing ends dead-lettered and its check concluded, never looping.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use std::collections::HashMap;

use super::runner::{Cancel, JobOutcome, JobRunner};
use crate::queue::{FailOutcome, Job, Queue, now_ms};

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
    let last_attempt = job.attempts >= i64::from(queue.config().max_attempts);
    // Keep the lease while we work; learn about supersession.
    let heartbeat = {
        let queue = queue.clone();
        let worker = worker.to_owned();
        let cancel = cancel.clone();
        let lease = settings.lease;
        let id = job.id;
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
    };
    let run = tokio::time::timeout(
        settings.job_timeout,
        runner.run_job(&job.payload, &cancel, last_attempt),
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
        Some(Ok(Ok(outcome))) => {
            match &outcome {
                JobOutcome::Published {
                    conclusion,
                    published_id,
                } => {
                    info!(conclusion = %conclusion, published = published_id, ms = elapsed.as_millis() as u64, "published")
                }
                JobOutcome::Skipped(why) => info!(reason = %why, "skipped"),
                JobOutcome::HandOff { .. } => {}
            }
            metrics::counter!("kubeward_jobs_total", "outcome" => "done").increment(1);
            let _ = queue.complete(job.id, worker).await;
        }
        Some(Ok(Err(e))) => {
            fail(queue, worker, &job, &e.to_string()).await;
        }
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
                let conclude = runner.conclude_abandoned(&job.payload, &error);
                match tokio::time::timeout(ABANDON_TIME_LIMIT, conclude).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(error = %e, "cannot conclude what the given-up job left pending")
                    }
                    Err(_) => warn!("concluding what the given-up job left pending took too long"),
                }
            }
            fail(queue, worker, &job, &error).await;
        }
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
