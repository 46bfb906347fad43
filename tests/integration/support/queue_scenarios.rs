//! The queue's behaviour, written once and run against every backend: each scenario is an
//! `async fn(&Store)`, and [`shared_scenarios!`] / [`single_handle_scenarios!`] turn the list
//! into `#[tokio::test]`s for one [`StoreKind`]: `queue.rs` runs them on SQLite and
//! `queue_postgres.rs` on PostgreSQL.
//!
//! A [`Store`] is one empty queue database; [`Store::queue`] opens a handle on it. Every
//! handle on a file or PostgreSQL store is another pool on the same data, like another
//! `kubeward serve` replica; on `sqlite::memory:` every handle is its own database, so only the
//! single-handle scenarios run there.
//!
//! PostgreSQL stores are databases created on the server named by `KUBEWARD_TEST_DATABASE_URL`
//! (which `scripts/test.sh` starts), one per test, so tests run in parallel; they are dropped
//! when the test passes (a failed test leaves its database for a look).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kubeward::queue::{
    DeferOutcome, DropOutcome, FailOutcome, JobState, NewJob, Queue, QueueConfig, QueueError,
    now_ms,
};
use serde_json::json;
use sqlx::Connection;
use tokio::sync::Mutex;

pub const LEASE: Duration = Duration::from_secs(30);
pub const LEASE_MS: i64 = 30_000;

/// The variable naming the PostgreSQL server the tests use.
pub const DATABASE_URL_VAR: &str = "KUBEWARD_TEST_DATABASE_URL";

/// Which backend a [`Store`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    SqliteMemory,
    SqliteFile,
    Postgres,
}

/// One empty queue database for one test.
pub enum Store {
    SqliteMemory,
    SqliteFile(tempfile::TempDir),
    Postgres(PgDatabase),
}

/// A database of its own on the test server.
pub struct PgDatabase {
    /// The server's URL as given (its database is the admin connection's).
    pub server_url: String,
    pub name: String,
    /// The server's URL with this database.
    pub url: String,
}

impl Store {
    pub async fn new(kind: StoreKind) -> Store {
        match kind {
            StoreKind::SqliteMemory => Store::SqliteMemory,
            StoreKind::SqliteFile => Store::SqliteFile(tempfile::tempdir().unwrap()),
            StoreKind::Postgres => Store::Postgres(PgDatabase::create().await),
        }
    }

    /// The queue URL (for `sqlite::memory:`, every connect is a new database).
    pub fn url(&self) -> String {
        match self {
            Store::SqliteMemory => "sqlite::memory:".into(),
            Store::SqliteFile(dir) => {
                format!("sqlite://{}", dir.path().join("state/queue.db").display())
            }
            Store::Postgres(db) => db.url.clone(),
        }
    }

    pub async fn queue(&self) -> Queue {
        Queue::connect(&self.url()).await.expect("queue connects")
    }

    pub async fn queue_with(&self, config: QueueConfig) -> Queue {
        Queue::connect_with(&self.url(), config)
            .await
            .expect("queue connects")
    }

    /// Drops the PostgreSQL database; called after a passing test.
    pub async fn finish(self) {
        if let Store::Postgres(db) = self {
            db.drop_database().await;
        }
    }
}

/// The server URL from `KUBEWARD_TEST_DATABASE_URL`; without it the test fails, naming the fix.
pub fn server_url() -> String {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{DATABASE_URL_VAR} is not set: run the PostgreSQL queue tests with scripts/test.sh \
             (e.g. `scripts/test.sh --test integration queue_postgres::`), which starts a throwaway PostgreSQL \
             server and sets it; or set it to postgres://USER:PASSWORD@HOST:PORT/DATABASE for a \
             role allowed to CREATE DATABASE"
        ),
    }
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let server_url = server_url();
        let name = format!(
            "kubeward_t{}_{}_{:08x}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = sqlx::PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {DATABASE_URL_VAR}: {err}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(&server_url).expect("the test database URL parses");
        url.set_path(&name);
        PgDatabase {
            server_url,
            name,
            url: url.into(),
        }
    }

    pub async fn drop_database(&self) {
        let Ok(mut admin) = sqlx::PgConnection::connect(&self.server_url).await else {
            return;
        };
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

/// `#[tokio::test]`s running the named scenarios on a fresh store of `$kind` each.
#[macro_export]
macro_rules! scenario_tests {
    ($kind:ident: $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let store = $crate::support::queue_scenarios::Store::new($crate::support::queue_scenarios::StoreKind::$kind).await;
                $crate::support::queue_scenarios::$name(&store).await;
                store.finish().await;
            }
        )*
    };
}

/// Scenarios that open one queue handle: they run on every store, `sqlite::memory:` included.
#[macro_export]
macro_rules! single_handle_scenarios {
    ($kind:ident) => {
        $crate::scenario_tests!($kind:
            claims_in_enqueue_order_and_respects_run_at,
            expired_lease_is_taken_over_and_stale_worker_loses_it,
            job_whose_worker_dies_on_the_last_attempt_is_handed_out_to_be_concluded,
            deferral_requeues_without_counting_the_attempt_and_is_bounded,
            deferred_jobs_are_superseded_by_a_newer_push,
            a_deferred_conclusion_stays_a_conclusion,
            supersede_marks_queued_and_cancels_running,
            release_of_cancel_requested_job_is_terminal_and_expired_one_is_finalized,
            retries_back_off_then_dead_letter,
            release_does_not_count_an_attempt,
            long_errors_are_truncated,
            drop_pr_and_drop_installation,
            drop_repository_drops_every_pr_of_the_repo,
            stats_count_states_and_oldest_age,
            prune_removes_old_history_but_keeps_live_and_dead_jobs,
            payload_round_trips_verbatim,
            snapshots_store_only_what_changed_and_rebuild_every_set,
            snapshots_fold_into_a_checkpoint_without_changing_any_set,
            merged_pull_requests_with_failing_reviews_count_as_escaped,
            an_uninstalled_repository_leaves_no_ownership_data,
            a_snapshot_whose_job_was_dropped_is_not_stored,
        );
    };
}

/// Every scenario, the ones with several handles on one database (replicas, restarts)
/// included: for file and PostgreSQL stores.
#[macro_export]
macro_rules! shared_scenarios {
    ($kind:ident) => {
        $crate::single_handle_scenarios!($kind);
        $crate::scenario_tests!($kind:
            delivery_dedupe_survives_reconnect,
            replicas_claim_every_job_exactly_once,
            dead_replica_lease_is_taken_over,
            concurrent_superseding_enqueues_leave_the_newest_job,
            retries_move_between_replicas_then_dead_letter,
            pr_head_mapping,
            enqueue_delivery_is_one_transaction_and_deduplicates,
            concurrent_redeliveries_enqueue_once,
            daily_totals_agree_with_every_repository_s_snapshots,
        );
    };
}

pub fn job(repo_id: i64, pr_number: Option<i64>) -> NewJob {
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

pub fn superseding(repo_id: i64, pr_number: i64) -> NewJob {
    NewJob {
        supersedes: true,
        ..job(repo_id, Some(pr_number))
    }
}

// ---------------------------------------------------------------------------------------------
// Single-handle scenarios.

pub async fn claims_in_enqueue_order_and_respects_run_at(store: &Store) {
    let queue = store.queue().await;
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

pub async fn expired_lease_is_taken_over_and_stale_worker_loses_it(store: &Store) {
    let queue = store.queue().await;
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

pub async fn job_whose_worker_dies_on_the_last_attempt_is_handed_out_to_be_concluded(
    store: &Store,
) {
    let queue = store
        .queue_with(QueueConfig::default().with_max_attempts(2))
        .await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let first = queue.claim("a", LEASE, t).await.unwrap().unwrap();
    assert_eq!((first.attempts, first.lease_expiries), (1, 0));
    assert!(!first.conclude_only);
    let again = queue
        .claim("b", LEASE, t + LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts, again.lease_expiries), (id, 2, 1));
    assert!(!again.conclude_only, "the last attempt is a real one");
    // Worker b dies too: the job is handed out once more, only to conclude its check.
    let last = queue
        .claim("c", LEASE, t + 2 * LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.id, last.attempts, last.lease_expiries), (id, 3, 2));
    assert!(last.conclude_only);
    assert_eq!(last.state, JobState::Running);
    // Not handed out twice at once.
    assert!(
        queue
            .claim("d", LEASE, t + 2 * LEASE_MS + 1)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        queue
            .give_up(id, "c", "crashed 2 times; concluded", t + 2 * LEASE_MS + 2)
            .await
            .unwrap(),
        FailOutcome::Dead { attempts: 3 }
    );
    let dead = queue.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(
        dead.last_error.as_deref(),
        Some("crashed 2 times; concluded")
    );
    assert_eq!(queue.stats(t + 3 * LEASE_MS).await.unwrap().dead, 1);
    // Giving up a job one no longer holds changes nothing.
    assert_eq!(
        queue.give_up(id, "c", "again", t).await.unwrap(),
        FailOutcome::NotHeld
    );

    // When the concluding worker dies as well, the job goes dead without a third try.
    let other = queue.enqueue(job(1, Some(2))).await.unwrap().id;
    let t = t + 10 * LEASE_MS;
    for (i, worker) in ["a", "b", "c"].into_iter().enumerate() {
        let now = t + i as i64 * LEASE_MS;
        let claimed = queue.claim(worker, LEASE, now).await.unwrap().unwrap();
        assert_eq!(claimed.id, other);
        assert_eq!(claimed.conclude_only, worker == "c");
    }
    assert!(
        queue
            .claim("d", LEASE, t + 3 * LEASE_MS)
            .await
            .unwrap()
            .is_none()
    );
    let dead = queue.get(other).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert!(
        dead.last_error
            .unwrap()
            .contains("lease of worker c expired while concluding")
    );
}

/// A job waiting for a write budget goes back in line with a not-before time, its attempt not
/// counted, however often; past the bounds the worker keeps it to conclude and give it up.
pub async fn deferral_requeues_without_counting_the_attempt_and_is_bounded(store: &Store) {
    let queue = store
        .queue_with(
            QueueConfig::default()
                .with_max_attempts(2)
                .with_deferral_limits(3, 60_000),
        )
        .await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let other_pr = queue.enqueue(job(1, Some(2))).await.unwrap().id;
    let mut now = t;
    for n in 1..=3i64 {
        let claimed = queue.claim("w", LEASE, now).await.unwrap().unwrap();
        assert_eq!(
            (claimed.id, claimed.attempts, claimed.deferrals),
            (id, 1, n - 1)
        );
        let until = now + 10_000;
        assert_eq!(
            queue
                .defer(id, "w", until, &format!("rate limited {n}"), now)
                .await
                .unwrap(),
            DeferOutcome::Deferred {
                run_at_ms: until,
                deferrals: n
            }
        );
        let row = queue.get(id).await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.attempts, row.deferrals, row.run_at_ms),
            (JobState::Queued, 0, n, until)
        );
        assert_eq!(row.last_error, Some(format!("rate limited {n}")));
        // No worker waits for it: the pull request's other work runs meanwhile.
        if n == 1 {
            let next = queue.claim("v", LEASE, now).await.unwrap().unwrap();
            assert_eq!(next.id, other_pr);
            assert!(queue.complete(other_pr, "v").await.unwrap());
        }
        assert!(queue.claim("w", LEASE, until - 1).await.unwrap().is_none());
        now = until;
    }
    // A fourth deferral is one too many: nothing changes, the worker still holds the job.
    let claimed = queue.claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!((claimed.attempts, claimed.deferrals), (1, 3));
    assert_eq!(
        queue
            .defer(id, "w", now + 10_000, "again", now)
            .await
            .unwrap(),
        DeferOutcome::LimitReached {
            deferrals: 3,
            deferred_ms: 30_000
        }
    );
    let held = queue.get(id).await.unwrap().unwrap();
    assert_eq!(
        (held.state, held.attempts, held.deferrals),
        (JobState::Running, 1, 3)
    );
    assert!(queue.heartbeat(id, "w", LEASE, now).await.unwrap().held);
    assert_eq!(
        queue
            .give_up(id, "w", "waited too long", now)
            .await
            .unwrap(),
        FailOutcome::Dead { attempts: 1 }
    );
    // An operator's retry starts the count afresh.
    assert!(queue.retry_dead(id, now).await.unwrap());
    let fresh = queue.get(id).await.unwrap().unwrap();
    assert_eq!((fresh.attempts, fresh.deferrals), (0, 0));

    // The time bound: a wait that would end more than 60 s after the first deferral.
    let claimed = queue.claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    assert!(matches!(
        queue
            .defer(id, "w", now + 50_000, "wait", now)
            .await
            .unwrap(),
        DeferOutcome::Deferred { .. }
    ));
    queue
        .claim("w", LEASE, now + 50_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        queue
            .defer(id, "w", now + 61_000, "wait", now + 50_000)
            .await
            .unwrap(),
        DeferOutcome::LimitReached {
            deferrals: 1,
            deferred_ms: 50_000
        }
    );
    // A stale worker cannot defer what it no longer holds.
    assert_eq!(
        queue.defer(id, "stale", now, "x", now).await.unwrap(),
        DeferOutcome::NotHeld
    );
}

/// A newer push supersedes a deferred job like any queued one; a job superseded while running
/// is not deferred but takes its terminal state.
pub async fn deferred_jobs_are_superseded_by_a_newer_push(store: &Store) {
    let queue = store.queue().await;
    let t = now_ms();
    let deferred = queue.enqueue(superseding(1, 1)).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue
        .defer(deferred, "w", t + 60_000, "rate limited", t)
        .await
        .unwrap();
    let newer = queue.enqueue(superseding(1, 1)).await.unwrap();
    assert_eq!(newer.superseded, vec![deferred]);
    assert_eq!(
        queue.get(deferred).await.unwrap().unwrap().state,
        JobState::Superseded
    );
    // The newer job runs at once; it is superseded while running, then asks to defer.
    let claimed = queue.claim("w", LEASE, t).await.unwrap().unwrap();
    assert_eq!(claimed.id, newer.id);
    let newest = queue.enqueue(superseding(1, 1)).await.unwrap();
    assert_eq!(newest.cancel_requested, vec![newer.id]);
    assert_eq!(
        queue
            .defer(newer.id, "w", t + 60_000, "rate limited", t)
            .await
            .unwrap(),
        DeferOutcome::Canceled {
            state: JobState::Superseded
        }
    );
    let next = queue.claim("w", LEASE, t).await.unwrap().unwrap();
    assert_eq!(next.id, newest.id);
    assert!(queue.complete(newest.id, "w").await.unwrap());
    // The deferred job never comes back.
    assert!(
        queue
            .claim("w", LEASE, t + 120_000)
            .await
            .unwrap()
            .is_none()
    );
}

/// A job claimed only to be concluded that must wait for a write budget is deferred like any
/// other, and comes back still only to be concluded.
pub async fn a_deferred_conclusion_stays_a_conclusion(store: &Store) {
    let queue = store
        .queue_with(QueueConfig::default().with_max_attempts(1))
        .await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("dies", LEASE, t).await.unwrap().unwrap();
    let concluding = queue
        .claim("w", LEASE, t + LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert!(concluding.conclude_only);
    let until = t + LEASE_MS + 5_000;
    assert!(matches!(
        queue
            .defer(id, "w", until, "rate limited", t + LEASE_MS)
            .await
            .unwrap(),
        DeferOutcome::Deferred { .. }
    ));
    let back = queue.claim("w", LEASE, until).await.unwrap().unwrap();
    assert_eq!((back.id, back.lease_expiries), (id, 1));
    assert!(back.conclude_only);
    assert!(queue.release(id, "w").await.unwrap());
    let back = queue.claim("w", LEASE, until).await.unwrap().unwrap();
    assert!(
        back.conclude_only,
        "a release does not make it a review again"
    );
}

pub async fn supersede_marks_queued_and_cancels_running(store: &Store) {
    let queue = store.queue().await;
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

    // A dropped PR's running job stays dropped when a superseding job arrives after all.
    queue.drop_pr("github", 1, 6).await.unwrap();
    queue.enqueue(superseding(1, 6)).await.unwrap();
    assert_eq!(
        queue.fail(other_pr, "w", "canceled", t + 4).await.unwrap(),
        FailOutcome::Canceled {
            state: JobState::Dropped
        }
    );

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

pub async fn release_of_cancel_requested_job_is_terminal_and_expired_one_is_finalized(
    store: &Store,
) {
    let queue = store.queue().await;
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

pub async fn retries_back_off_then_dead_letter(store: &Store) {
    let config = QueueConfig::default()
        .with_max_attempts(3)
        .with_backoff(1_000, 3_000);
    let queue = store.queue_with(config).await;
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

    // An operator can put it back; only a dead job can be.
    assert!(queue.retry_dead(id, now).await.unwrap());
    assert!(!queue.retry_dead(id, now).await.unwrap());
    let again = queue.claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 1));
    assert_eq!(queue.stats(now).await.unwrap().dead, 0);
}

pub async fn release_does_not_count_an_attempt(store: &Store) {
    let queue = store.queue().await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    assert!(queue.release(id, "w").await.unwrap());
    let job = queue.get(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Queued, 0));
    let again = queue.claim("v", LEASE, t).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 1));
}

pub async fn long_errors_are_truncated(store: &Store) {
    let queue = store.queue().await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    queue.fail(id, "w", &"é".repeat(10_000), t).await.unwrap();
    let error = queue.get(id).await.unwrap().unwrap().last_error.unwrap();
    assert!(error.len() <= kubeward::queue::MAX_ERROR_LEN);
    assert!(error.chars().all(|c| c == 'é'));
}

pub async fn drop_pr_and_drop_installation(store: &Store) {
    let queue = store.queue().await;
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

pub async fn drop_repository_drops_every_pr_of_the_repo(store: &Store) {
    let queue = store.queue().await;
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

pub async fn stats_count_states_and_oldest_age(store: &Store) {
    let queue = store.queue().await;
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
    // (Repository 1's queued jobs go first, so only the new one waits; its running one is leased
    // until long after the clock used below.)
    queue.drop_repository("github", 1).await.unwrap();
    let stats = queue.stats(t + 5_000).await.unwrap();
    assert_eq!(
        (stats.queued, stats.running, stats.oldest_queued_age_ms),
        (0, 1, None)
    );
    let before = now_ms();
    let id = queue.enqueue(job(2, Some(1))).await.unwrap().id;
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

pub async fn prune_removes_old_history_but_keeps_live_and_dead_jobs(store: &Store) {
    let queue = store
        .queue_with(QueueConfig::default().with_max_attempts(1))
        .await;
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

    // Nothing is older than a cutoff in the past.
    let pruned = queue.prune(t - 60_000).await.unwrap();
    assert_eq!((pruned.deliveries, pruned.jobs, pruned.pr_heads), (0, 0, 0));

    // Queued jobs remembered their head ("abc123", the head of PRs 1, 2 and 3) as well.
    assert_eq!(
        queue.prs_for_head("github", 1, "abc123").await.unwrap(),
        vec![1, 2, 3]
    );
    let pruned = queue.prune(now_ms() + 1).await.unwrap();
    assert_eq!((pruned.deliveries, pruned.jobs, pruned.pr_heads), (1, 1, 4));
    assert!(queue.get(done).await.unwrap().is_none());
    assert!(queue.get(dead).await.unwrap().is_some());
    assert!(queue.get(live).await.unwrap().is_some());
    assert!(
        queue
            .prs_for_head("github", 1, "sha")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        queue
            .prs_for_head("github", 1, "abc123")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(queue.record_delivery("github", "old").await.unwrap());
}

/// The payload comes back exactly as enqueued: key order, unicode, big numbers, nulls.
pub async fn payload_round_trips_verbatim(store: &Store) {
    let queue = store.queue().await;
    let payload = json!({
        "zeta": 1,
        "alpha": {"b": [true, null, 1.5], "a": "ünïcødé ✓ \u{0}"},
        "big": 9_007_199_254_740_993_i64,
        "": "empty key",
    });
    let id = queue
        .enqueue(NewJob {
            payload: payload.clone(),
            head_sha: None,
            installation_id: None,
            ..job(i64::MAX, Some(i64::MIN))
        })
        .await
        .unwrap()
        .id;
    let got = queue.get(id).await.unwrap().unwrap();
    assert_eq!(got.payload, payload);
    assert_eq!(
        serde_json::to_string(&got.payload).unwrap(),
        serde_json::to_string(&payload).unwrap(),
        "key order is kept"
    );
    assert_eq!((got.repo_id, got.pr_number), (i64::MAX, Some(i64::MIN)));
    assert_eq!((got.head_sha, got.installation_id), (None, None));
    let claimed = queue.claim("w", LEASE, now_ms()).await.unwrap().unwrap();
    assert_eq!(claimed.payload, payload);
}

// ---------------------------------------------------------------------------------------------
// Scenarios with several handles on one database: restarts and replicas.

pub async fn delivery_dedupe_survives_reconnect(store: &Store) {
    {
        let queue = store.queue().await;
        if let Store::SqliteFile(dir) = store {
            // The file (and its directory) was created, in WAL mode.
            assert!(dir.path().join("state/queue.db-wal").exists());
        }
        assert!(queue.record_delivery("github", "d-1").await.unwrap());
        assert!(!queue.record_delivery("github", "d-1").await.unwrap());
        // The key is per forge.
        assert!(queue.record_delivery("gitlab", "d-1").await.unwrap());
        queue.enqueue(job(1, Some(1))).await.unwrap();
    }
    // A restart loses nothing: deliveries and jobs are still there, and migrations are idempotent.
    let queue = store.queue().await;
    assert!(!queue.record_delivery("github", "d-1").await.unwrap());
    assert!(!queue.record_delivery("gitlab", "d-1").await.unwrap());
    assert!(queue.record_delivery("github", "d-2").await.unwrap());
    let claimed = queue.claim("w", LEASE, now_ms()).await.unwrap().unwrap();
    assert_eq!(
        claimed.payload,
        json!({"pr": 1, "nested": {"list": [1, 2, 3]}})
    );
}

/// Many workers on several handles ("replicas") claim concurrently; some attempts fail and are
/// retried at once. Every job is completed exactly once, and no claim returns a job another
/// worker holds.
pub async fn replicas_claim_every_job_exactly_once(store: &Store) {
    const JOBS: i64 = 300;
    const REPLICAS: usize = 4;
    const WORKERS_PER_REPLICA: usize = 6;
    // No backoff: a failed job is runnable again at once, so retries race too.
    let config = QueueConfig::default()
        .with_max_attempts(3)
        .with_backoff(0, 0);
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(store.queue_with(config).await);
    }
    let mut expected = HashSet::new();
    for i in 0..JOBS {
        let queue = &replicas[i as usize % REPLICAS];
        expected.insert(queue.enqueue(job(i % 7, Some(i))).await.unwrap().id);
    }

    let completed = Arc::new(Mutex::new(Vec::new()));
    let holding = Arc::new(Mutex::new(HashSet::new()));
    let now = now_ms() + 1;
    let mut tasks = Vec::new();
    for (r, queue) in replicas.iter().enumerate() {
        for w in 0..WORKERS_PER_REPLICA {
            let queue = queue.clone();
            let completed = Arc::clone(&completed);
            let holding = Arc::clone(&holding);
            tasks.push(tokio::spawn(async move {
                let name = format!("replica-{r}-worker-{w}");
                while let Some(job) = queue.claim(&name, LEASE, now).await.unwrap() {
                    assert!(
                        holding.lock().await.insert(job.id),
                        "job {} claimed while another worker held it",
                        job.id
                    );
                    tokio::task::yield_now().await;
                    // Every fifth job fails its first attempt.
                    let fail = job.id % 5 == 0 && job.attempts == 1;
                    holding.lock().await.remove(&job.id);
                    if fail {
                        let outcome = queue.fail(job.id, &name, "flaky", now).await.unwrap();
                        assert!(matches!(outcome, FailOutcome::Retry { .. }), "{outcome:?}");
                    } else {
                        assert!(queue.complete(job.id, &name).await.unwrap());
                        completed.lock().await.push((job.id, job.attempts));
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }

    let completed = completed.lock().await;
    let unique: HashSet<i64> = completed.iter().map(|&(id, _)| id).collect();
    assert_eq!(completed.len(), unique.len(), "a job was completed twice");
    assert_eq!(unique, expected, "every job is completed exactly once");
    for &(id, attempts) in completed.iter() {
        let want = if id % 5 == 0 { 2 } else { 1 };
        assert_eq!(attempts, want, "job {id}");
    }
    let stats = replicas[0].stats(now).await.unwrap();
    assert_eq!((stats.queued, stats.running, stats.dead), (0, 0, 0));
}

/// A replica dies holding a job (no more heartbeats, its handle gone): once the lease runs out,
/// another replica takes the job over, and the dead replica's worker, should it come back,
/// cannot report a result.
pub async fn dead_replica_lease_is_taken_over(store: &Store) {
    let t = now_ms();
    let id = {
        let replica_a = store.queue().await;
        let id = replica_a.enqueue(job(1, Some(1))).await.unwrap().id;
        let held = replica_a.claim("a-1", LEASE, t).await.unwrap().unwrap();
        assert_eq!((held.id, held.attempts), (id, 1));
        assert!(
            replica_a
                .heartbeat(id, "a-1", LEASE, t + 10_000)
                .await
                .unwrap()
                .held
        );
        id
    };

    let replica_b = store.queue().await;
    // The last heartbeat's lease still holds.
    assert!(
        replica_b
            .claim("b-1", LEASE, t + 10_000 + LEASE_MS - 1)
            .await
            .unwrap()
            .is_none()
    );
    let stats = replica_b.stats(t + 10_000).await.unwrap();
    assert_eq!((stats.queued, stats.running), (0, 1));
    let taken = replica_b
        .claim("b-1", LEASE, t + 10_000 + LEASE_MS)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id, taken.attempts), (id, 2));

    let replica_a = store.queue().await;
    let late = t + 10_000 + LEASE_MS + 1;
    assert!(
        !replica_a
            .heartbeat(id, "a-1", LEASE, late)
            .await
            .unwrap()
            .held
    );
    assert!(!replica_a.complete(id, "a-1").await.unwrap());
    assert_eq!(
        replica_a.fail(id, "a-1", "late", late).await.unwrap(),
        FailOutcome::NotHeld
    );
    assert!(replica_b.complete(id, "b-1").await.unwrap());
    let done = replica_a.get(id).await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Done, 2));
}

/// Replicas enqueue superseding jobs for the same PRs at the same time (pushes in quick
/// succession): afterwards each PR has exactly one job left to run, its newest, and the job a
/// worker was running for it is asked to stop.
pub async fn concurrent_superseding_enqueues_leave_the_newest_job(store: &Store) {
    const REPLICAS: usize = 4;
    const PUSHES: usize = 15;
    let t = now_ms();
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(store.queue().await);
    }
    let running = replicas[0].enqueue(job(1, Some(5))).await.unwrap().id;
    assert_eq!(
        replicas[0].claim("w", LEASE, t).await.unwrap().unwrap().id,
        running
    );
    let old_queued = replicas[1].enqueue(job(1, Some(5))).await.unwrap().id;

    let mut tasks = Vec::new();
    for (r, queue) in replicas.iter().enumerate() {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            // (pr, id) of every job enqueued here.
            let mut enqueued = Vec::new();
            for push in 0..PUSHES {
                // Both PRs in one delivery, in varying order: each delivery locks two PRs.
                let prs = if (r + push) % 2 == 0 { [5, 6] } else { [6, 5] };
                let ids = queue
                    .enqueue_delivery(
                        "github",
                        &format!("push-{r}-{push}"),
                        prs.iter().map(|&pr| superseding(1, pr)).collect(),
                    )
                    .await
                    .unwrap()
                    .unwrap();
                enqueued.extend(prs.into_iter().zip(ids));
                let outcome = queue.enqueue(superseding(1, 5)).await.unwrap();
                // Never more than one job per PR is waiting.
                assert!(outcome.superseded.len() <= 1, "{outcome:?}");
                enqueued.push((5, outcome.id));
            }
            enqueued
        }));
    }
    let mut newest: HashMap<i64, i64> = HashMap::new();
    for task in tasks {
        for (pr, id) in task.await.unwrap() {
            let entry = newest.entry(pr).or_insert(id);
            *entry = (*entry).max(id);
        }
    }

    let queue = &replicas[0];
    let stats = queue.stats(t).await.unwrap();
    assert_eq!((stats.queued, stats.running), (2, 1), "one job per PR left");
    // PR 5's newest job waits for the running one: one PR's jobs never run at once.
    let first = queue.claim("w2", LEASE, t).await.unwrap().unwrap();
    assert_eq!(first.pr_number, Some(6));
    assert!(queue.claim("w2", LEASE, t).await.unwrap().is_none());
    // Its worker notices the cancellation and stops; now PR 5's newest job can run.
    let beat = queue.heartbeat(running, "w", LEASE, t + 1).await.unwrap();
    assert!(beat.held && beat.cancel_requested);
    assert!(queue.release(running, "w").await.unwrap());
    assert!(queue.release(first.id, "w2").await.unwrap());
    let mut survivors = [
        queue.claim("w2", LEASE, t).await.unwrap().unwrap(),
        queue.claim("w2", LEASE, t).await.unwrap().unwrap(),
    ];
    assert!(queue.claim("w2", LEASE, t).await.unwrap().is_none());
    survivors.sort_by_key(|job| job.pr_number);
    // The survivor of each PR is its newest job (the highest id).
    assert_eq!(
        survivors
            .iter()
            .map(|job| (job.pr_number.unwrap(), job.id))
            .collect::<Vec<_>>(),
        vec![(5, newest[&5]), (6, newest[&6])]
    );
    assert_eq!(
        queue.get(old_queued).await.unwrap().unwrap().state,
        JobState::Superseded
    );
}

/// A failing job moves between replicas: each retry waits out its backoff wherever it runs,
/// and after `max_attempts` failures the job is dead on every replica.
pub async fn retries_move_between_replicas_then_dead_letter(store: &Store) {
    let config = QueueConfig::default()
        .with_max_attempts(3)
        .with_backoff(1_000, 4_000);
    let replicas = [
        store.queue_with(config).await,
        store.queue_with(config).await,
        store.queue_with(config).await,
    ];
    let mut now = now_ms();
    let id = replicas[0].enqueue(job(1, Some(1))).await.unwrap().id;
    for (attempt, queue) in (1..=3i64).zip(&replicas) {
        let worker = format!("worker-{attempt}");
        let claimed = queue.claim(&worker, LEASE, now).await.unwrap().unwrap();
        assert_eq!((claimed.id, claimed.attempts), (id, attempt));
        let outcome = queue
            .fail(id, &worker, &format!("boom {attempt}"), now)
            .await
            .unwrap();
        if attempt < 3 {
            let FailOutcome::Retry { run_at_ms, .. } = outcome else {
                panic!("expected a retry, got {outcome:?}");
            };
            let ceiling = 1_000i64 << (attempt - 1);
            assert!((ceiling / 2..=ceiling).contains(&(run_at_ms - now)));
            for other in &replicas {
                assert!(
                    other
                        .claim("early", LEASE, run_at_ms - 1)
                        .await
                        .unwrap()
                        .is_none()
                );
            }
            now = run_at_ms;
        } else {
            assert_eq!(outcome, FailOutcome::Dead { attempts: 3 });
        }
    }
    for queue in &replicas {
        let dead = queue.get(id).await.unwrap().unwrap();
        assert_eq!(
            (dead.state, dead.last_error.as_deref()),
            (JobState::Dead, Some("boom 3"))
        );
        assert_eq!(queue.stats(now).await.unwrap().dead, 1);
        assert!(
            queue
                .claim("w", LEASE, now + 1_000_000)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert!(replicas[2].retry_dead(id, now).await.unwrap());
    let again = replicas[0].claim("w", LEASE, now).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (id, 1));
}

pub async fn pr_head_mapping(store: &Store) {
    let queue = store.queue().await;
    let prs = |queue: Queue, repo: i64, forge: &'static str| async move {
        queue.prs_for_head(forge, repo, "sha1").await.unwrap()
    };
    assert!(prs(queue.clone(), 1, "github").await.is_empty());
    queue
        .remember_pr_head("github", 1, "sha1", 10)
        .await
        .unwrap();
    queue
        .remember_pr_head("github", 2, "sha1", 20)
        .await
        .unwrap();
    assert_eq!(prs(queue.clone(), 1, "github").await, vec![10]);
    assert_eq!(prs(queue.clone(), 2, "github").await, vec![20]);
    assert!(prs(queue.clone(), 1, "gitlab").await.is_empty());
    // One head, two pull requests (a branch proposed to two bases): both are remembered, once.
    for pr in [11, 10, 11] {
        queue
            .remember_pr_head("github", 1, "sha1", pr)
            .await
            .unwrap();
    }
    drop(queue);
    let queue = store.queue().await;
    assert_eq!(prs(queue, 1, "github").await, vec![10, 11]);
}

pub async fn enqueue_delivery_is_one_transaction_and_deduplicates(store: &Store) {
    let queue = store.queue().await;
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
    assert!(ids[0] < ids[1], "ids follow the delivery's order");
    assert!(queue.delivery_seen("github", "d-1").await.unwrap());
    assert!(!queue.delivery_seen("gitlab", "d-1").await.unwrap());
    // Supersession applies inside the delivery's transaction too.
    assert!(queue.get(running).await.unwrap().unwrap().cancel_requested);

    // The redelivery (even after a restart) enqueues nothing.
    let queue = store.queue().await;
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

/// The forge redelivers while the first delivery is still being handled, to different
/// replicas: exactly one of them enqueues its jobs.
pub async fn concurrent_redeliveries_enqueue_once(store: &Store) {
    const REPLICAS: usize = 6;
    let mut replicas = Vec::new();
    for _ in 0..REPLICAS {
        replicas.push(store.queue().await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(REPLICAS));
    let mut tasks = Vec::new();
    for queue in &replicas {
        let queue = queue.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            queue
                .enqueue_delivery(
                    "github",
                    "same-delivery",
                    vec![superseding(1, 1), job(1, None), job(2, Some(3))],
                )
                .await
                .unwrap()
        }));
    }
    let mut accepted = Vec::new();
    for task in tasks {
        if let Some(ids) = task.await.unwrap() {
            accepted.push(ids);
        }
    }
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0].len(), 3);
    assert_eq!(replicas[0].stats(now_ms()).await.unwrap().queued, 3);
}

// ---- the ownership store -------------------------------------------------------------------

fn owned(
    key: &str,
    path: &str,
    line: u32,
    severity: &str,
    owners: &[&str],
) -> kubeward::ownership::OwnedFinding {
    kubeward::ownership::OwnedFinding {
        key: key.into(),
        fingerprint: key.split('~').next().unwrap_or(key).into(),
        rule: "runAsPrivileged".into(),
        severity: if severity == "danger" {
            kubeward::audit::Severity::Danger
        } else {
            kubeward::audit::Severity::Warning
        },
        path: path.into(),
        line,
        object: "Deployment shop/web".into(),
        message: "Should not be running as privileged".into(),
        owners: owners.iter().map(|o| (*o).to_owned()).collect(),
        environments: vec!["prod".into()],
    }
}

fn snapshot(
    commit: &str,
    at_ms: i64,
    reviewed: bool,
    findings: Vec<kubeward::ownership::OwnedFinding>,
) -> kubeward::queue::ownership::NewSnapshot {
    kubeward::queue::ownership::NewSnapshot {
        forge: "github".into(),
        repo_id: 7,
        repo_name: "org/platform".into(),
        installation_id: Some(1),
        web_url: Some("https://github.com/org/platform".into()),
        commit: commit.into(),
        taken_at_ms: at_ms,
        cause: kubeward::queue::ownership::SnapshotCause::Push,
        reviewed,
        findings,
    }
}

/// Three pushes: the first is a checkpoint, the second fixes one finding, moves one and adds
/// one, the third changes nothing; a retried job of the same commit stores nothing. Every
/// snapshot's set is rebuilt from the deltas exactly.
pub async fn snapshots_store_only_what_changed_and_rebuild_every_set(store: &Store) {
    let queue = store.queue().await;
    let day = 86_400_000;
    let first = vec![
        owned("a", "apps/web.yaml", 10, "danger", &["@org/web"]),
        owned("b", "apps/web.yaml", 20, "warning", &["@org/web"]),
        owned("c", "legacy/old.yaml", 3, "danger", &[]),
    ];
    let second = vec![
        owned("a", "apps/web/deployment.yaml", 10, "danger", &["@org/web"]),
        owned("c", "legacy/old.yaml", 3, "danger", &[]),
        owned("d", "apps/api.yaml", 1, "danger", &["@org/api"]),
    ];
    let one = queue
        .record_snapshot(&snapshot("c1", day, true, first.clone()))
        .await
        .expect("first");
    assert!(one.checkpoint);
    assert_eq!((one.added, one.removed, one.moved), (3, 0, 0));
    // The second push was not reviewed: what it added reached the branch unreviewed.
    let two = queue
        .record_snapshot(&snapshot("c2", 2 * day, false, second.clone()))
        .await
        .expect("second");
    assert!(!two.checkpoint);
    assert_eq!((two.added, two.removed, two.moved), (1, 1, 1));
    let retried = queue
        .record_snapshot(&snapshot("c2", 2 * day + 5, false, second.clone()))
        .await
        .expect("retry");
    assert_eq!(retried.id, two.id, "the same commit is not stored twice");
    let three = queue
        .record_snapshot(&snapshot("c3", 3 * day, true, second.clone()))
        .await
        .expect("third");
    assert_eq!(
        (three.added, three.removed, three.moved),
        (0, 0, 0),
        "nothing changed, nothing stored"
    );

    let records = queue.snapshots("github", 7).await.expect("records");
    assert_eq!(records.len(), 3);
    assert_eq!((records[1].open_danger, records[1].open_warning), (3, 0));
    assert_eq!(
        queue.findings_at("github", 7, one.id).await.expect("set"),
        first
    );
    assert_eq!(
        queue.findings_at("github", 7, two.id).await.expect("set"),
        {
            let mut s = second.clone();
            s.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
            s
        }
    );
    let open = queue.open_findings("github", 7).await.expect("open");
    assert_eq!(open.len(), 3);

    let overview = queue
        .ownership_overview(0, Some(2 * day + 1))
        .await
        .expect("overview");
    // Where each team stood when the window began: the second snapshot's totals.
    let at_start = |name: &str| {
        overview
            .before
            .iter()
            .find(|c| c.team == name)
            .map(|c| (c.danger, c.warning))
    };
    assert_eq!(at_start("@org/web"), Some((1, 0)));
    assert_eq!(at_start("@org/api"), Some((1, 0)));
    let team = |name: &str| {
        overview
            .teams
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.danger, t.warning))
    };
    assert_eq!(team("@org/web"), Some((1, 0)));
    assert_eq!(team("@org/api"), Some((1, 0)));
    assert_eq!(team("unowned"), Some((1, 0)));
    assert_eq!((overview.unowned_danger, overview.unowned_warning), (1, 0));
    assert_eq!(
        overview.environments,
        [kubeward::queue::ownership::GroupCount {
            name: "prod".into(),
            danger: 3,
            warning: 0
        }]
    );
    assert_eq!(overview.unreviewed, 1, "d came in with an unreviewed push");
    let api = queue.team_findings("@org/api").await.expect("team");
    assert_eq!(api.len(), 1);
    assert!(api[0].unreviewed);
    assert_eq!(
        api[0].commit, "c3",
        "links point at the latest snapshot's commit"
    );
    assert_eq!(api[0].since_ms, 2 * day);
    let web = queue.team_findings("@org/web").await.expect("team");
    assert_eq!(
        web[0].finding.path, "apps/web/deployment.yaml",
        "moved with its file"
    );
    assert_eq!(web[0].since_ms, day, "a moved finding keeps its age");
    assert!(!web[0].unreviewed);
    // Trends: each snapshot's team totals (zero where the team had nothing), or everything.
    let mut web_trend = queue
        .trend_rows(Some("@org/web"), 0, i64::MAX)
        .await
        .expect("trend");
    web_trend.sort_by_key(|r| r.taken_at_ms);
    let web_counts: Vec<(u64, u64)> = web_trend.iter().map(|r| (r.danger, r.warning)).collect();
    assert_eq!(
        web_counts,
        [(1, 1), (1, 0), (1, 0)],
        "b was fixed by the second push"
    );
    let mut api_trend = queue
        .trend_rows(Some("@org/api"), 0, i64::MAX)
        .await
        .expect("trend");
    api_trend.sort_by_key(|r| r.taken_at_ms);
    assert_eq!(
        api_trend.iter().map(|r| r.danger).collect::<Vec<_>>(),
        [0, 1, 1]
    );
    let all = queue.trend_rows(None, 0, 2 * day + 1).await.expect("trend");
    assert_eq!(all.len(), 2, "only snapshots before the end asked for");
    // A window reads its own snapshots and the one each repository starts it from.
    let mut window = queue
        .trend_rows(None, 2 * day + 1, 4 * day)
        .await
        .expect("trend");
    window.sort_by_key(|r| r.taken_at_ms);
    let taken: Vec<i64> = window.iter().map(|r| r.taken_at_ms).collect();
    assert_eq!(taken, [2 * day, 3 * day]);
    // The overview is summed from the latest snapshot, and agrees with the open findings.
    let rules: i64 = overview.rules.iter().map(|r| r.danger + r.warning).sum();
    assert_eq!(rules, 3, "each open finding once, by rule");
    assert_eq!(
        overview
            .repositories
            .iter()
            .map(|r| (r.name.as_str(), r.danger, r.warning))
            .collect::<Vec<_>>(),
        [("org/platform", 3, 0)]
    );
    let repos = queue.team_repositories("@org/web").await.expect("repos");
    assert_eq!(repos.len(), 1);
    assert_eq!(
        (
            repos[0].name.as_str(),
            repos[0].commit.as_str(),
            repos[0].danger
        ),
        ("org/platform", "c3", 1)
    );
    let page = queue
        .findings_of(
            kubeward::queue::ownership::FindingsOf::Repository {
                forge: "github",
                repo_id: 7,
            },
            Some((2, 1)),
        )
        .await
        .expect("page");
    let paths: Vec<&str> = page.iter().map(|f| f.finding.path.as_str()).collect();
    assert_eq!(
        paths,
        ["apps/web/deployment.yaml", "legacy/old.yaml"],
        "the second and third by path"
    );
    // The schedule: due once its latest snapshot is older than the interval.
    let due = queue.repositories_due(3 * day + 1).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].name.as_str(), due[0].installation_id),
        ("org/platform", Some(1))
    );
    assert!(
        queue
            .repositories_due(3 * day)
            .await
            .expect("due")
            .is_empty()
    );
}

/// Ninety days of daily snapshots fold into a checkpoint: every later set is unchanged, and
/// the stored rows are the checkpoint plus what changed since.
pub async fn snapshots_fold_into_a_checkpoint_without_changing_any_set(store: &Store) {
    let queue = store.queue().await;
    let day = 86_400_000;
    let mut sets = Vec::new();
    let mut ids = Vec::new();
    for d in 0..90i64 {
        // One finding fixed and one added every ten days; otherwise the same set.
        let generation = d / 10;
        let set: Vec<_> = (generation..generation + 5)
            .map(|i| {
                owned(
                    &format!("f{i}"),
                    &format!("apps/{i}.yaml"),
                    1,
                    "warning",
                    &["@org/web"],
                )
            })
            .collect();
        let outcome = queue
            .record_snapshot(&snapshot(
                &format!("c{d}"),
                (d + 1) * day,
                true,
                set.clone(),
            ))
            .await
            .expect("snapshot");
        sets.push(set);
        ids.push(outcome.id);
    }
    let records = queue.snapshots("github", 7).await.expect("records");
    let stored: i64 = records
        .iter()
        .skip(1)
        .map(|r| r.added + r.removed + r.moved)
        .sum();
    assert_eq!(
        stored,
        8 * 2,
        "a fix and an addition every ten days, nothing on the other days"
    );
    let folded = queue.fold_snapshots(60 * day + 1).await.expect("fold");
    assert_eq!(folded, 59, "days 1 to 59 fold into day 60's checkpoint");
    let records = queue.snapshots("github", 7).await.expect("records");
    assert!(records[59].checkpoint);
    for d in [59usize, 60, 75, 89] {
        let mut want = sets[d].clone();
        want.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
        assert_eq!(
            queue.findings_at("github", 7, ids[d]).await.expect("set"),
            want,
            "day {d}"
        );
    }
    assert_eq!(
        queue
            .fold_snapshots(60 * day + 1)
            .await
            .expect("fold again"),
        0
    );
}

pub async fn merged_pull_requests_with_failing_reviews_count_as_escaped(store: &Store) {
    let queue = store.queue().await;
    let outcome =
        |pr: i64, head: &str, at: i64, failing: i64| kubeward::queue::ownership::ReviewOutcome {
            forge: "github".into(),
            repo_id: 7,
            pr_number: pr,
            head_sha: head.into(),
            reviewed_at_ms: at,
            new_findings: failing + 1,
            fixed_findings: 0,
            exemptions_added: 0,
            new_failing: failing,
            teams: vec![kubeward::queue::ownership::TeamOutcome {
                team: if pr == 2 { "@org/api" } else { "@org/web" }.into(),
                new_findings: failing + 1,
                fixed_findings: 1,
                new_failing: failing,
            }],
        };
    queue
        .record_review_outcome(&outcome(1, "h1", 10, 2))
        .await
        .expect("review");
    // The author fixed one before merging: the last review counts.
    queue
        .record_review_outcome(&outcome(1, "h2", 20, 1))
        .await
        .expect("review");
    queue
        .record_review_outcome(&outcome(2, "h3", 30, 4))
        .await
        .expect("review");
    assert_eq!(
        queue
            .record_pr_closed("github", 7, 1, true, Some("m1"), 40)
            .await
            .expect("closed"),
        1
    );
    assert_eq!(
        queue
            .record_pr_closed("github", 7, 2, false, None, 50)
            .await
            .expect("closed"),
        0,
        "closed unmerged"
    );
    assert_eq!(
        queue
            .record_pr_closed("github", 7, 3, true, Some("m3"), 60)
            .await
            .expect("closed"),
        0,
        "never reviewed"
    );
    assert_eq!(
        queue
            .ownership_overview(0, None)
            .await
            .expect("overview")
            .escaped,
        1
    );
    // Per team: what its reviews caught, and what of it escaped.
    let web = queue.team_reviews("@org/web", 0).await.expect("reviews");
    assert_eq!(web.len(), 1);
    assert_eq!(
        (
            web[0].reviews,
            web[0].pull_requests,
            web[0].new_findings,
            web[0].fixed_findings,
            web[0].new_failing,
            web[0].escaped
        ),
        (2, 1, 5, 2, 3, 1)
    );
    let api = queue.team_reviews("@org/api", 0).await.expect("reviews");
    assert_eq!(api[0].escaped, 0, "its pull request closed unmerged");
    assert!(
        queue
            .team_reviews("@org/web", 15)
            .await
            .expect("reviews")
            .iter()
            .all(|r| r.reviews == 1),
        "only reviews in the window"
    );
    assert_eq!(
        queue
            .ownership_overview(45, None)
            .await
            .expect("overview")
            .escaped,
        0
    );
    // What a push carries was reviewed when it is a reviewed head or a reviewed PR's merge.
    let reviewed = |shas: &[&str]| {
        let shas: Vec<String> = shas.iter().map(|s| (*s).to_owned()).collect();
        let queue = queue.clone();
        async move {
            queue
                .commit_reviewed("github", 7, &shas)
                .await
                .expect("query")
        }
    };
    assert!(reviewed(&["h2"]).await);
    assert!(reviewed(&["x", "m1"]).await);
    assert!(!reviewed(&["m3"]).await, "merged, never reviewed");
    assert!(!reviewed(&["other"]).await);
}

pub async fn an_uninstalled_repository_leaves_no_ownership_data(store: &Store) {
    let queue = store.queue().await;
    let set = vec![owned("a", "apps/web.yaml", 1, "danger", &["@org/web"])];
    queue
        .record_snapshot(&snapshot("c1", 1, true, set))
        .await
        .expect("snapshot");
    let mut other = snapshot(
        "c1",
        1,
        true,
        vec![owned("z", "x.yaml", 1, "danger", &["@org/web"])],
    );
    other.repo_id = 8;
    queue.record_snapshot(&other).await.expect("snapshot");
    queue
        .delete_repository_data("github", 7)
        .await
        .expect("delete");
    assert!(
        queue
            .snapshots("github", 7)
            .await
            .expect("records")
            .is_empty()
    );
    assert!(
        queue
            .open_findings("github", 7)
            .await
            .expect("open")
            .is_empty()
    );
    let web = queue.team_findings("@org/web").await.expect("team");
    assert_eq!(web.len(), 1, "the other repository stays");
    assert_eq!(web[0].repo_id, 8);
}

/// A snapshot job still running when its repository leaves the installation (or a newer push
/// supersedes it) stores nothing: the removed data does not come back.
pub async fn a_snapshot_whose_job_was_dropped_is_not_stored(store: &Store) {
    let queue = store.queue().await;
    let t = now_ms();
    let findings = vec![owned("a", "apps/web.yaml", 1, "danger", &["@org/web"])];
    let running = queue.enqueue(job(7, None)).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    let kept = queue
        .record_snapshot_of_job(&snapshot("c1", t, true, findings.clone()), running)
        .await
        .expect("stored");
    assert!(!kept.discarded && kept.checkpoint);
    queue.drop_repository("github", 7).await.unwrap();
    queue.delete_repository_data("github", 7).await.unwrap();
    let late = queue
        .record_snapshot_of_job(&snapshot("c2", t + 1, true, findings), running)
        .await
        .expect("answered");
    assert!(late.discarded);
    assert!(queue.snapshots("github", 7).await.unwrap().is_empty());
    assert!(queue.team_findings("@org/web").await.unwrap().is_empty());
    assert!(
        queue
            .ownership_overview(0, None)
            .await
            .unwrap()
            .teams
            .is_empty()
    );
}

/// Runs `sql` on the store's database beside the queue, saying whether it failed.
async fn try_raw(store: &Store, sql: &str) -> Result<(), String> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match store {
        Store::SqliteMemory => panic!("an in-memory store has no second connection"),
        Store::SqliteFile(_) => {
            let mut conn = sqlx::SqliteConnection::connect(&store.url())
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.map(|_| ())
        }
        Store::Postgres(db) => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            sqlx::raw_sql(sql).execute(&mut conn).await.map(|_| ())
        }
    }
    .map_err(|e| e.to_string())
}

/// Runs `sql` on the store's database beside the queue (file and PostgreSQL stores).
async fn execute_raw(store: &Store, sql: &str) {
    if let Err(e) = try_raw(store, sql).await {
        panic!("{e}");
    }
}

/// The statements of migration 6 that begin with `head`: what it fills from stored data.
fn migration_6_statements(store: &Store, head: &str) -> String {
    let migration = match store {
        Store::Postgres(_) => {
            include_str!("../../../src/queue/migrations/postgres/0006_dashboard_rollups.sql")
        }
        _ => include_str!("../../../src/queue/migrations/sqlite/0006_dashboard_rollups.sql"),
    };
    let mut statements = String::new();
    let mut rest = migration;
    while let Some(start) = rest.find(head) {
        let end = start + rest[start..].find(';').expect("its end");
        statements.push_str(&rest[start..=end]);
        statements.push('\n');
        rest = &rest[end..];
    }
    assert!(!statements.is_empty(), "migration 6 has {head}");
    statements
}

/// The trends the daily totals answer are the ones summed from every repository's snapshots
/// (the slow way they replace), on every day: with a repository skipping days, two pushes in
/// a day, a team losing all its findings and ownership moving between teams. Migration 6's
/// backfill gives the same, and deleting a repository takes back all it added.
pub async fn daily_totals_agree_with_every_repository_s_snapshots(store: &Store) {
    use kubeward::ownership::daily_trend;
    let queue = store.queue().await;
    let day = 86_400_000i64;
    let at = |d: i64, hour: i64| 10 * day + d * day + hour * 3_600_000;
    let repo = |id: i64, name: &str, commit: &str, t: i64, findings| {
        let mut s = snapshot(commit, t, true, findings);
        s.repo_id = id;
        s.repo_name = name.into();
        s
    };
    let web = "@org/web";
    let api = "@org/api";
    let f = owned;
    // In prod and staging.
    let w = {
        let mut w = f("w", "z.yaml", 5, "warning", &[web]);
        w.environments = vec!["prod".into(), "staging".into()];
        w
    };
    let history = [
        repo(
            7,
            "org/a",
            "a1",
            at(0, 9),
            vec![
                f("a", "web.yaml", 1, "danger", &[web]),
                f("b", "web.yaml", 9, "warning", &[web, api]),
            ],
        ),
        repo(
            8,
            "org/m",
            "m1",
            at(0, 10),
            vec![f("m", "api.yaml", 3, "danger", &[api])],
        ),
        // Two pushes on one day: the later one counts for the day.
        repo(
            7,
            "org/a",
            "a2",
            at(1, 8),
            vec![f("a", "web.yaml", 1, "danger", &[web])],
        ),
        repo(
            7,
            "org/a",
            "a3",
            at(1, 20),
            vec![
                f("a", "web.yaml", 1, "danger", &[web]),
                f("c", "web.yaml", 20, "danger", &[]),
            ],
        ),
        repo(
            9,
            "org/z",
            "z1",
            at(2, 1),
            vec![f("z", "z.yaml", 1, "danger", &[api]), w.clone()],
        ),
        // Repository 8 skips day 2; on day 3 its finding moves from api to web.
        repo(
            8,
            "org/m",
            "m2",
            at(3, 5),
            vec![
                f("m", "api.yaml", 3, "danger", &[web]),
                f("n", "api.yaml", 7, "warning", &[web]),
            ],
        ),
        // The api team has nothing left in repository 9, which is renamed; w stays as it was
        // (its rows are not rewritten, only renamed).
        repo(
            9,
            "org/b",
            "z2",
            at(4, 2),
            vec![f("y", "z.yaml", 2, "danger", &[web]), w.clone()],
        ),
        repo(7, "org/a", "a4", at(5, 0), Vec::new()),
    ];
    for s in &history {
        queue.record_snapshot(s).await.expect("snapshot");
    }
    let (first_day, last_day) = (9, 16);
    let days = u32::try_from(last_day - first_day + 1).expect("days");
    let now = (last_day + 1) * day - 1;
    let compare = |label: &'static str| {
        let queue = queue.clone();
        async move {
            for team in ["", web, api, "unowned", "@org/nobody"] {
                let rows = queue
                    .trend_rows((!team.is_empty()).then_some(team), 0, i64::MAX)
                    .await
                    .expect("per repository");
                let points: Vec<_> = rows.iter().map(|r| r.point()).collect();
                assert_eq!(
                    queue
                        .daily_trend(team, first_day, last_day)
                        .await
                        .expect("daily"),
                    daily_trend(&points, now, days),
                    "{label}: the trend of {team:?}"
                );
            }
            for d in first_day..=last_day + 1 {
                let overview = queue
                    .ownership_overview(0, Some(d * day))
                    .await
                    .expect("overview");
                let mut by_team: Vec<(String, (i64, i64))> = Vec::new();
                let mut summed: HashMap<String, (i64, i64)> = HashMap::new();
                for c in &overview.before {
                    let e = summed.entry(c.team.clone()).or_default();
                    e.0 += c.danger;
                    e.1 += c.warning;
                }
                by_team.extend(summed.into_iter().filter(|(_, (d, w))| d + w > 0));
                by_team.sort();
                let mut daily: Vec<(String, (i64, i64))> = queue
                    .teams_before_day(d)
                    .await
                    .expect("teams")
                    .into_iter()
                    .map(|c| (c.name, (c.danger, c.warning)))
                    .collect();
                daily.sort();
                assert_eq!(daily, by_team, "{label}: teams before day {d}");
            }
        }
    };
    compare("written with each snapshot").await;
    let all = queue
        .daily_trend("", first_day, last_day)
        .await
        .expect("all");
    let counts: Vec<(u64, u64)> = all.iter().map(|p| (p.danger, p.warning)).collect();
    assert_eq!(
        counts,
        [
            (0, 0),
            (2, 1),
            (3, 0),
            (4, 1),
            (4, 2),
            (4, 2),
            (2, 2),
            (2, 2)
        ],
        "day by day: nothing yet, a+b+m, a+c+m, +z+w, +n, z fixed and y, repository 7 clean"
    );
    // The renamed repository's findings sort under its new name on its teams' pages.
    let page_of = |team: &'static str| {
        let queue = queue.clone();
        async move {
            queue
                .team_findings(team)
                .await
                .expect("team")
                .iter()
                .map(|f| f.repo_id)
                .collect::<Vec<i64>>()
        }
    };
    let web_page = page_of(web).await;
    assert_eq!(
        web_page,
        [9, 8, 9, 8],
        "danger (y, m) then warning (w, n), each by repository: w sorts under org/b, not org/z"
    );
    // What a user granted web in repository 9 alone is counted.
    let mut seen = queue
        .visible_counts(&[("github".into(), 9, web.into())])
        .await
        .expect("visible counts");
    seen.sort_by_key(|c| c.severity != kubeward::audit::Severity::Danger);
    let seen: Vec<_> = seen
        .iter()
        .map(|c| {
            (
                c.repository.as_str(),
                c.severity,
                c.environments.clone(),
                c.unowned,
                c.findings,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "org/b",
                kubeward::audit::Severity::Danger,
                vec!["prod".to_owned()],
                false,
                1
            ),
            (
                "org/b",
                kubeward::audit::Severity::Warning,
                vec!["prod".to_owned(), "staging".to_owned()],
                false,
                1
            )
        ],
        "y and w, nothing of repository 8's web findings"
    );
    // An older kubeward's insert (no daily_counted) is refused: its change would be missed.
    let refused = try_raw(
        store,
        "INSERT INTO snapshots (forge, repo_id, commit_sha, taken_at_ms, cause, checkpoint,
             reviewed, added, removed, moved, open_danger, open_warning, open_unreviewed)
         VALUES ('github', 9, 'old', 0, 'push', 0, 1, 0, 0, 0, 0, 0, 0)",
    )
    .await;
    assert!(refused.is_err(), "an older writer's snapshot was stored");

    let environments = |overview: kubeward::queue::ownership::StoredOverview| {
        overview
            .environments
            .into_iter()
            .map(|c| (c.name, c.danger, c.warning))
            .collect::<Vec<_>>()
    };
    let written = environments(queue.ownership_overview(0, None).await.expect("overview"));
    assert_eq!(
        written,
        [("prod".to_owned(), 2, 2), ("staging".to_owned(), 0, 1)],
        "m, n, y and w in prod, w also in staging"
    );

    // What migration 6 fills from a store made before it.
    execute_raw(
        store,
        &format!(
            "DELETE FROM daily_totals; {}
             UPDATE open_finding_teams SET danger_first = 1, repository = '', path = '',
                 line = 0, rule = '', environments = '[]', unreviewed = 0;
             {}
             DELETE FROM snapshot_environment_totals; {}",
            migration_6_statements(store, "INSERT INTO daily_totals"),
            migration_6_statements(store, "UPDATE open_finding_teams"),
            migration_6_statements(store, "INSERT INTO snapshot_environment_totals"),
        ),
    )
    .await;
    assert_eq!(
        environments(queue.ownership_overview(0, None).await.expect("overview")),
        written,
        "the environments, filled by the migration"
    );
    compare("filled by the migration").await;
    assert_eq!(
        page_of(web).await,
        web_page,
        "the page's order, filled by the migration"
    );

    queue
        .delete_repository_data("github", 8)
        .await
        .expect("delete");
    compare("after a repository's data is deleted").await;
    let all = queue
        .daily_trend("", first_day, last_day)
        .await
        .expect("all");
    assert_eq!(all[2].danger, 2, "day 11 without m: a and c");

    // A repository of the same id on the other forge, and a snapshot stored after a newer one
    // but stamped before it (a stalled worker): it counts from when it was stored.
    let gitlab = |commit: &str, t: i64, findings| {
        let mut s = repo(7, "group/a", commit, t, findings);
        s.forge = "gitlab".into();
        s
    };
    for s in [
        gitlab("g1", at(0, 1), vec![f("g", "g.yaml", 1, "danger", &[web])]),
        gitlab(
            "g2",
            at(2, 1),
            vec![
                f("g", "g.yaml", 1, "danger", &[web]),
                f("h", "g.yaml", 4, "danger", &[web]),
            ],
        ),
        gitlab("g3", at(1, 1), vec![f("g", "g.yaml", 1, "danger", &[web])]),
    ] {
        queue.record_snapshot(&s).await.expect("snapshot");
    }
    let stored: Vec<i64> = queue
        .snapshots("gitlab", 7)
        .await
        .expect("snapshots")
        .iter()
        .map(|s| s.taken_at_ms)
        .collect();
    assert_eq!(stored, [at(0, 1), at(2, 1), at(2, 1)], "g3 stored as of g2");
    compare("with a late snapshot on the other forge").await;
}
