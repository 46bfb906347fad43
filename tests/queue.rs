//! The durable job queue against real SQLite: files in temporary directories and in-memory.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use kubeward::queue::{
    DropOutcome, FailOutcome, JobState, NewJob, Queue, QueueConfig, QueueError, now_ms,
};
use serde_json::json;
use tokio::sync::Mutex;

const LEASE: Duration = Duration::from_secs(30);
const LEASE_MS: i64 = 30_000;

fn job(repo_id: i64, pr_number: Option<i64>) -> NewJob {
    NewJob {
        kind: "review".into(),
        forge: "github".into(),
        installation_id: Some(7),
        repo_id,
        pr_number,
        head_sha: Some("abc123".into()),
        payload: json!({"pr": pr_number, "nested": {"list": [1, 2, 3]}}),
        supersedes: false,
        run_at_ms: None,
    }
}

fn superseding(repo_id: i64, pr_number: i64) -> NewJob {
    NewJob {
        supersedes: true,
        ..job(repo_id, Some(pr_number))
    }
}

async fn memory() -> Queue {
    Queue::connect("sqlite::memory:")
        .await
        .expect("in-memory queue")
}

fn file_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("state/queue.db").display())
}

#[tokio::test]
async fn delivery_dedupe_survives_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    {
        let queue = Queue::connect(&url).await.unwrap();
        // The file (and its directory) was created, in WAL mode.
        assert!(dir.path().join("state/queue.db-wal").exists());
        assert!(queue.record_delivery("github", "d-1").await.unwrap());
        assert!(!queue.record_delivery("github", "d-1").await.unwrap());
        // The key is per forge.
        assert!(queue.record_delivery("gitlab", "d-1").await.unwrap());
        queue.enqueue(job(1, Some(1))).await.unwrap();
    }
    // A restart loses nothing: deliveries and jobs are still there, and migrations are idempotent.
    let queue = Queue::connect(&url).await.unwrap();
    assert!(!queue.record_delivery("github", "d-1").await.unwrap());
    assert!(!queue.record_delivery("gitlab", "d-1").await.unwrap());
    assert!(queue.record_delivery("github", "d-2").await.unwrap());
    let claimed = queue.claim("w", LEASE, now_ms()).await.unwrap().unwrap();
    assert_eq!(
        claimed.payload,
        json!({"pr": 1, "nested": {"list": [1, 2, 3]}})
    );
}

#[tokio::test]
async fn memory_delivery_dedupe_and_isolated_databases() {
    let a = memory().await;
    let b = memory().await;
    assert!(a.record_delivery("github", "x").await.unwrap());
    assert!(!a.record_delivery("github", "x").await.unwrap());
    // Each `sqlite::memory:` connection is its own database.
    assert!(b.record_delivery("github", "x").await.unwrap());
}

#[tokio::test]
async fn unsupported_and_invalid_urls_are_clear_errors() {
    let err = Queue::connect("postgres://user:secret@db/kubeward")
        .await
        .unwrap_err();
    assert!(
        matches!(err, QueueError::UnsupportedBackend { ref scheme, .. } if scheme == "postgres")
    );
    assert!(!err.to_string().contains("secret"), "{err}");
    let err = Queue::connect("mysql://db").await.unwrap_err();
    assert!(
        matches!(err, QueueError::UnsupportedBackend { .. }),
        "{err}"
    );
    let err = Queue::connect("sqlite://").await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidUrl(_)), "{err}");
    let err = Queue::connect_with(
        "sqlite::memory:",
        QueueConfig::default().with_max_attempts(0),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, QueueError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn claims_in_enqueue_order_and_respects_run_at() {
    let queue = memory().await;
    let t = now_ms();
    let later = queue
        .enqueue(NewJob {
            run_at_ms: Some(t + 60_000),
            ..job(1, Some(1))
        })
        .await
        .unwrap()
        .id;
    let first = queue.enqueue(job(1, Some(2))).await.unwrap().id;
    let second = queue.enqueue(job(2, None)).await.unwrap().id;

    let now = t + 1_000;
    let a = queue.claim("w", LEASE, now).await.unwrap().unwrap();
    let b = queue.claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!((a.id, b.id), (first, second));
    assert_eq!(a.state, JobState::Running);
    assert_eq!(a.attempts, 1);
    assert_eq!(b.pr_number, None);
    assert!(queue.claim("w", LEASE, now).await.unwrap().is_none());

    let c = queue.claim("w", LEASE, t + 60_000).await.unwrap().unwrap();
    assert_eq!(c.id, later);

    assert!(queue.complete(a.id, "w").await.unwrap());
    assert_eq!(
        queue.get(a.id).await.unwrap().unwrap().state,
        JobState::Done
    );
    // Completing twice, or as another worker, changes nothing.
    assert!(!queue.complete(a.id, "w").await.unwrap());
    assert!(!queue.complete(b.id, "other").await.unwrap());
    assert!(queue.get(9_999).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_on_one_file_never_share_a_job() {
    const JOBS: i64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let first = Queue::connect(&url).await.unwrap();
    let second = Queue::connect(&url).await.unwrap();
    let mut expected = HashSet::new();
    for i in 0..JOBS {
        expected.insert(first.enqueue(job(i % 7, Some(i))).await.unwrap().id);
    }

    let claimed = Arc::new(Mutex::new(Vec::new()));
    let now = now_ms() + 1;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let queue = if worker % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let claimed = Arc::clone(&claimed);
        tasks.push(tokio::spawn(async move {
            let name = format!("worker-{worker}");
            while let Some(job) = queue.claim(&name, LEASE, now).await.unwrap() {
                assert!(queue.complete(job.id, &name).await.unwrap());
                claimed.lock().await.push(job.id);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }

    let claimed = claimed.lock().await;
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), unique.len(), "a job was claimed twice");
    assert_eq!(unique, expected, "every job is claimed exactly once");
    let stats = second.stats(now).await.unwrap();
    assert_eq!((stats.queued, stats.running), (0, 0));
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_stale_worker_loses_it() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::connect(&file_url(&dir)).await.unwrap();
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;

    let first = queue.claim("old", LEASE, t).await.unwrap().unwrap();
    assert_eq!(first.id, id);
    // Still leased: nobody else gets it.
    assert!(
        queue
            .claim("new", LEASE, t + LEASE_MS - 1)
            .await
            .unwrap()
            .is_none()
    );
    // Heartbeat extends the lease.
    let beat = queue.heartbeat(id, "old", LEASE, t + 20_000).await.unwrap();
    assert!(beat.held && !beat.cancel_requested);
    assert!(
        queue
            .claim("new", LEASE, t + LEASE_MS)
            .await
            .unwrap()
            .is_none()
    );

    // The old worker goes silent; after its extended lease, another takes over.
    let taken = queue
        .claim("new", LEASE, t + 20_000 + LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, id);
    assert_eq!(taken.attempts, 2);

    let stale = queue.heartbeat(id, "old", LEASE, t + 60_000).await.unwrap();
    assert!(!stale.held);
    assert!(!queue.complete(id, "old").await.unwrap());
    assert_eq!(
        queue.fail(id, "old", "late", t + 60_000).await.unwrap(),
        FailOutcome::NotHeld
    );
    assert!(!queue.release(id, "old").await.unwrap());
    assert!(
        queue
            .heartbeat(id, "new", LEASE, t + 60_000)
            .await
            .unwrap()
            .held
    );
    assert!(queue.complete(id, "new").await.unwrap());
}

#[tokio::test]
async fn job_whose_worker_dies_on_the_last_attempt_goes_dead() {
    let config = QueueConfig::default().with_max_attempts(2);
    let queue = Queue::connect_with("sqlite::memory:", config)
        .await
        .unwrap();
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("a", LEASE, t).await.unwrap().unwrap();
    let again = queue
        .claim("b", LEASE, t + LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (id, 2));
    // Worker b dies too; the job is not handed out a third time.
    assert!(
        queue
            .claim("c", LEASE, t + 2 * LEASE_MS)
            .await
            .unwrap()
            .is_none()
    );
    let dead = queue.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert!(
        dead.last_error
            .unwrap()
            .contains("lease of worker b expired")
    );
}

#[tokio::test]
async fn supersede_marks_queued_and_cancels_running() {
    let queue = memory().await;
    let t = now_ms();
    let running = queue.enqueue(job(1, Some(5))).await.unwrap().id;
    assert_eq!(
        queue.claim("w", LEASE, t).await.unwrap().unwrap().id,
        running
    );
    let queued = queue.enqueue(job(1, Some(5))).await.unwrap().id;
    let other_pr = queue.enqueue(job(1, Some(6))).await.unwrap().id;
    let other_repo = queue.enqueue(job(2, Some(5))).await.unwrap().id;
    let other_forge = queue
        .enqueue(NewJob {
            forge: "gitlab".into(),
            ..job(1, Some(5))
        })
        .await
        .unwrap()
        .id;

    let outcome = queue.enqueue(superseding(1, 5)).await.unwrap();
    assert_eq!(outcome.superseded, vec![queued]);
    assert_eq!(outcome.cancel_requested, vec![running]);

    assert_eq!(
        queue.get(queued).await.unwrap().unwrap().state,
        JobState::Superseded
    );
    let run = queue.get(running).await.unwrap().unwrap();
    assert_eq!(run.state, JobState::Running);
    assert!(run.cancel_requested);
    for id in [other_pr, other_repo, other_forge, outcome.id] {
        let job = queue.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "job {id}");
        assert!(!job.cancel_requested);
    }

    // The worker notices, and a failure is not retried: the job takes its terminal state.
    let beat = queue.heartbeat(running, "w", LEASE, t + 1).await.unwrap();
    assert!(beat.held && beat.cancel_requested);
    assert_eq!(
        queue.fail(running, "w", "canceled", t + 2).await.unwrap(),
        FailOutcome::Canceled {
            state: JobState::Superseded
        }
    );
    assert_eq!(
        queue.get(running).await.unwrap().unwrap().state,
        JobState::Superseded
    );

    // The superseded job is never claimed; the next one is the other PR's.
    let next = queue.claim("w", LEASE, t + 3).await.unwrap().unwrap();
    assert_eq!(next.id, other_pr);

    // supersedes without a PR is refused rather than silently ignored.
    let err = queue
        .enqueue(NewJob {
            supersedes: true,
            ..job(1, None)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn release_of_cancel_requested_job_is_terminal_and_expired_one_is_finalized() {
    let queue = memory().await;
    let t = now_ms();
    let a = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let b = queue.enqueue(job(1, Some(2))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue.enqueue(superseding(1, 1)).await.unwrap();
    queue.drop_pr("github", 1, 2).await.unwrap();

    assert!(queue.release(a, "w").await.unwrap());
    assert_eq!(
        queue.get(a).await.unwrap().unwrap().state,
        JobState::Superseded
    );
    // b's worker dies; once its lease expires the job is dropped, not taken over.
    let next = queue
        .claim("x", LEASE, t + LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(next.id, b);
    assert_eq!(
        queue.get(b).await.unwrap().unwrap().state,
        JobState::Dropped
    );
}

#[tokio::test]
async fn retries_back_off_then_dead_letter() {
    let config = QueueConfig::default()
        .with_max_attempts(3)
        .with_backoff(1_000, 3_000);
    let queue = Queue::connect_with("sqlite::memory:", config)
        .await
        .unwrap();
    let mut now = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;

    for attempt in 1..=2i64 {
        let claimed = queue.claim("w", LEASE, now).await.unwrap().unwrap();
        assert_eq!((claimed.id, claimed.attempts), (id, attempt));
        let outcome = queue
            .fail(id, "w", &format!("boom {attempt}"), now)
            .await
            .unwrap();
        let FailOutcome::Retry {
            attempts,
            run_at_ms,
        } = outcome
        else {
            panic!("expected a retry, got {outcome:?}");
        };
        assert_eq!(attempts, attempt);
        // Equal jitter: between half and all of base * 2^(attempt-1), capped.
        let ceiling = (1_000i64 << (attempt - 1)).min(3_000);
        let delay = run_at_ms - now;
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "delay {delay}, ceiling {ceiling}"
        );

        let waiting = queue.get(id).await.unwrap().unwrap();
        assert_eq!(waiting.state, JobState::Queued);
        assert_eq!(
            waiting.last_error.as_deref(),
            Some(format!("boom {attempt}").as_str())
        );
        assert!(
            queue
                .claim("w", LEASE, run_at_ms - 1)
                .await
                .unwrap()
                .is_none()
        );
        now = run_at_ms;
    }

    queue.claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!(
        queue.fail(id, "w", "final", now).await.unwrap(),
        FailOutcome::Dead { attempts: 3 }
    );
    let dead = queue.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.last_error.as_deref(), Some("final"));
    assert!(
        queue
            .claim("w", LEASE, now + 10_000_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(queue.stats(now).await.unwrap().dead, 1);

    // An operator can put it back.
    assert!(queue.retry_dead(id, now).await.unwrap());
    let again = queue.claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 1));
}

#[tokio::test]
async fn release_does_not_count_an_attempt() {
    let queue = memory().await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    assert!(queue.release(id, "w").await.unwrap());
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
    let again = queue.claim("v", LEASE, t).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 1));
}

#[tokio::test]
async fn long_errors_are_truncated() {
    let queue = memory().await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue.fail(id, "w", &"é".repeat(10_000), t).await.unwrap();
    let error = queue.get(id).await.unwrap().unwrap().last_error.unwrap();
    assert!(error.len() <= kubeward::queue::MAX_ERROR_LEN);
    assert!(error.chars().all(|c| c == 'é'));
}

#[tokio::test]
async fn drop_pr_and_drop_installation() {
    let queue = memory().await;
    let t = now_ms();
    let running = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    let queued = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let kept = queue.enqueue(job(1, Some(2))).await.unwrap().id;

    let outcome = queue.drop_pr("github", 1, 1).await.unwrap();
    assert_eq!(
        outcome,
        DropOutcome {
            dropped: vec![queued],
            cancel_requested: vec![running],
        }
    );
    assert_eq!(
        queue.get(queued).await.unwrap().unwrap().state,
        JobState::Dropped
    );
    assert!(queue.get(running).await.unwrap().unwrap().cancel_requested);
    assert_eq!(
        queue.get(kept).await.unwrap().unwrap().state,
        JobState::Queued
    );
    // A worker that finishes anyway records the truth.
    assert!(queue.complete(running, "w").await.unwrap());
    assert_eq!(
        queue.get(running).await.unwrap().unwrap().state,
        JobState::Done
    );

    let other_installation = queue
        .enqueue(NewJob {
            installation_id: Some(8),
            ..job(3, Some(1))
        })
        .await
        .unwrap()
        .id;
    let gitlab_same_id = queue
        .enqueue(NewJob {
            forge: "gitlab".into(),
            ..job(4, Some(1))
        })
        .await
        .unwrap()
        .id;
    let claimed = queue.claim("w", LEASE, t).await.unwrap().unwrap();
    assert_eq!(claimed.id, kept);
    let more = queue.enqueue(job(5, None)).await.unwrap().id;

    let outcome = queue.drop_installation("github", 7).await.unwrap();
    assert_eq!(outcome.dropped, vec![more]);
    assert_eq!(outcome.cancel_requested, vec![kept]);
    assert_eq!(
        queue.get(other_installation).await.unwrap().unwrap().state,
        JobState::Queued
    );
    assert_eq!(
        queue.get(gitlab_same_id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    // Dropping again finds nothing new to drop.
    assert_eq!(
        queue.drop_installation("github", 7).await.unwrap().dropped,
        Vec::<i64>::new()
    );
}

#[tokio::test]
async fn pr_head_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let queue = Queue::connect(&url).await.unwrap();
    assert_eq!(queue.pr_for_head("github", 1, "sha1").await.unwrap(), None);
    queue
        .remember_pr_head("github", 1, "sha1", 10)
        .await
        .unwrap();
    queue
        .remember_pr_head("github", 2, "sha1", 20)
        .await
        .unwrap();
    assert_eq!(
        queue.pr_for_head("github", 1, "sha1").await.unwrap(),
        Some(10)
    );
    assert_eq!(
        queue.pr_for_head("github", 2, "sha1").await.unwrap(),
        Some(20)
    );
    assert_eq!(queue.pr_for_head("gitlab", 1, "sha1").await.unwrap(), None);
    // The latest PR wins (the same commit pushed to a new PR).
    queue
        .remember_pr_head("github", 1, "sha1", 11)
        .await
        .unwrap();
    drop(queue);
    let queue = Queue::connect(&url).await.unwrap();
    assert_eq!(
        queue.pr_for_head("github", 1, "sha1").await.unwrap(),
        Some(11)
    );
}

#[tokio::test]
async fn stats_count_states_and_oldest_age() {
    let queue = memory().await;
    // Ahead of the wall clock, so the explicit run_at (not the enqueue time) is what counts.
    let t = now_ms() + 60_000;
    assert_eq!(queue.stats(t).await.unwrap().oldest_queued_age_ms, None);
    let first = queue
        .enqueue(NewJob {
            run_at_ms: Some(t),
            ..job(1, Some(1))
        })
        .await
        .unwrap()
        .id;
    queue
        .enqueue(NewJob {
            run_at_ms: Some(t + 1_000),
            ..job(1, Some(2))
        })
        .await
        .unwrap();
    // Not yet runnable: counted as queued, but not waiting.
    queue
        .enqueue(NewJob {
            run_at_ms: Some(t + 100_000),
            ..job(1, Some(3))
        })
        .await
        .unwrap();

    let stats = queue.stats(t + 5_000).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (3, 0, 0));
    assert_eq!(stats.oldest_queued_age_ms, Some(5_000));

    assert_eq!(
        queue
            .claim("w", LEASE, t + 5_000)
            .await
            .unwrap()
            .unwrap()
            .id,
        first
    );
    let stats = queue.stats(t + 5_000).await.unwrap();
    assert_eq!((stats.queued, stats.running), (2, 1));
    assert_eq!(stats.oldest_queued_age_ms, Some(4_000));

    // Without run_at a job waits from its enqueue (wall clock), and is runnable under any clock.
    let queue = memory().await;
    let before = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let age = queue
        .stats(before + 10_000)
        .await
        .unwrap()
        .oldest_queued_age_ms
        .unwrap();
    assert!((9_000..=10_000).contains(&age), "{age}");
    assert_eq!(
        queue
            .stats(before - 10_000)
            .await
            .unwrap()
            .oldest_queued_age_ms,
        Some(0)
    );
    assert_eq!(
        queue.claim("w", LEASE, 1_000).await.unwrap().unwrap().id,
        id
    );
}

#[tokio::test]
async fn prune_removes_old_history_but_keeps_live_and_dead_jobs() {
    let config = QueueConfig::default().with_max_attempts(1);
    let queue = Queue::connect_with("sqlite::memory:", config)
        .await
        .unwrap();
    let t = now_ms();
    queue.record_delivery("github", "old").await.unwrap();
    queue.remember_pr_head("github", 1, "sha", 1).await.unwrap();
    let done = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let dead = queue.enqueue(job(1, Some(2))).await.unwrap().id;
    let live = queue.enqueue(job(1, Some(3))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue.complete(done, "w").await.unwrap();
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue.fail(dead, "w", "x", t).await.unwrap();

    let pruned = queue.prune(now_ms() + 1).await.unwrap();
    assert_eq!((pruned.deliveries, pruned.jobs, pruned.pr_heads), (1, 1, 1));
    assert!(queue.get(done).await.unwrap().is_none());
    assert!(queue.get(dead).await.unwrap().is_some());
    assert!(queue.get(live).await.unwrap().is_some());
    assert!(queue.record_delivery("github", "old").await.unwrap());
}

#[tokio::test]
async fn enqueue_delivery_is_one_transaction_and_deduplicates() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir);
    let queue = Queue::connect(&url).await.unwrap();
    let t = now_ms();
    let running = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();

    assert!(!queue.delivery_seen("github", "d-1").await.unwrap());
    let ids = queue
        .enqueue_delivery("github", "d-1", vec![superseding(1, 1), job(2, None)])
        .await
        .unwrap()
        .expect("a new delivery");
    assert_eq!(ids.len(), 2);
    assert!(queue.delivery_seen("github", "d-1").await.unwrap());
    assert!(!queue.delivery_seen("gitlab", "d-1").await.unwrap());
    // Supersession applies inside the delivery's transaction too.
    assert!(queue.get(running).await.unwrap().unwrap().cancel_requested);

    // The redelivery (even after a restart) enqueues nothing.
    let queue = Queue::connect(&url).await.unwrap();
    assert_eq!(
        queue
            .enqueue_delivery("github", "d-1", vec![job(3, None)])
            .await
            .unwrap(),
        None
    );
    assert_eq!(queue.stats(t).await.unwrap().queued, 2);
    assert!(!queue.record_delivery("github", "d-1").await.unwrap());

    // An invalid job refuses the whole delivery, leaving it unrecorded for a redelivery.
    let err = queue
        .enqueue_delivery(
            "github",
            "d-2",
            vec![
                job(4, None),
                NewJob {
                    supersedes: true,
                    ..job(4, None)
                },
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Invalid(_)), "{err}");
    assert!(!queue.delivery_seen("github", "d-2").await.unwrap());
    assert_eq!(queue.stats(t).await.unwrap().queued, 2);
    // A delivery without jobs is still remembered.
    assert_eq!(
        queue
            .enqueue_delivery("github", "d-3", Vec::new())
            .await
            .unwrap(),
        Some(vec![])
    );
    assert!(queue.delivery_seen("github", "d-3").await.unwrap());
}

#[tokio::test]
async fn drop_repository_drops_every_pr_of_the_repo() {
    let queue = memory().await;
    let t = now_ms();
    let running = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    let a = queue.enqueue(job(1, Some(2))).await.unwrap().id;
    let b = queue.enqueue(job(1, None)).await.unwrap().id;
    let other = queue.enqueue(job(2, Some(1))).await.unwrap().id;

    let outcome = queue.drop_repository("github", 1).await.unwrap();
    assert_eq!(outcome.dropped, vec![a, b]);
    assert_eq!(outcome.cancel_requested, vec![running]);
    assert_eq!(
        queue.get(other).await.unwrap().unwrap().state,
        JobState::Queued
    );
    // The canceled job's worker gives it back: it ends dropped, not requeued.
    assert!(queue.release(running, "w").await.unwrap());
    assert_eq!(
        queue.get(running).await.unwrap().unwrap().state,
        JobState::Dropped
    );
}
