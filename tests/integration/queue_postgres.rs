//! The durable job queue against a real PostgreSQL server: the one `KUBEWARD_TEST_DATABASE_URL`
//! names, which `scripts/test.sh` starts for the run (these tests fail, naming the script, when
//! it is not set). Each test works in a database of its own, so they run in parallel.
//!
//! Every scenario of `support/queue_scenarios.rs` (also run on SQLite by `queue.rs`), plus
//! what only a shared server shows: claims skip rows other replicas hold locked instead of
//! waiting, replicas starting together migrate once, and credentials stay out of errors.

use crate::support::queue_scenarios as scenarios;

use std::time::Duration;

use kubeward::queue::{FailOutcome, JobState, Queue, QueueConfig, QueueError, now_ms};
use scenarios::{LEASE, PgDatabase, Store, StoreKind, job};
use sqlx::{Connection, Row};

mod postgres {
    shared_scenarios!(Postgres);
}

async fn admin(db: &PgDatabase) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&db.url).await.unwrap()
}

fn pg(store: &Store) -> &PgDatabase {
    match store {
        Store::Postgres(db) => db,
        _ => unreachable!("a PostgreSQL store"),
    }
}

/// A replica holding a job's row locked (mid-claim, mid-fail) does not make another replica's
/// claim wait: it takes the next job at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_skips_rows_locked_by_another_replica_without_waiting() {
    let store = Store::new(StoreKind::Postgres).await;
    let queue = store.queue().await;
    let first = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    let second = queue.enqueue(job(1, Some(2))).await.unwrap().id;

    let mut other_replica = admin(pg(&store)).await;
    let mut tx = other_replica.begin().await.unwrap();
    sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(first)
        .fetch_one(&mut *tx)
        .await
        .unwrap();

    let t = now_ms();
    let claimed = tokio::time::timeout(Duration::from_secs(5), queue.claim("w", LEASE, t))
        .await
        .expect("the claim does not wait for the locked row")
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, second);
    let none = tokio::time::timeout(Duration::from_secs(5), queue.claim("w", LEASE, t))
        .await
        .expect("the claim does not wait for the locked row")
        .unwrap();
    assert!(none.is_none());

    // An expired lease whose row is locked is passed over the same way.
    let expired = t + 10 * LEASE.as_millis() as i64;
    drop(tx);
    let mut tx = other_replica.begin().await.unwrap();
    sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(second)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let claimed = tokio::time::timeout(Duration::from_secs(5), queue.claim("x", LEASE, expired))
        .await
        .expect("the claim does not wait for the locked row")
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, first);

    // Once the lock is gone, the expired job is taken over as usual.
    tx.rollback().await.unwrap();
    let taken = queue.claim("y", LEASE, expired).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (second, 2));
    store.finish().await;
}

/// Handing out a job whose worker died on its last attempt, to be concluded, does not wait for
/// a replica holding its row; nor does dead-lettering it when its concluding worker dies too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finalizing_expired_leases_skips_locked_rows() {
    let store = Store::new(StoreKind::Postgres).await;
    let queue = store
        .queue_with(QueueConfig::default().with_max_attempts(1))
        .await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("dies", LEASE, t).await.unwrap().unwrap();

    let mut other_replica = admin(pg(&store)).await;
    let lock = "SELECT id FROM jobs WHERE id = $1 FOR UPDATE";
    for (worker, expired) in [("concludes", 2), ("late", 4)] {
        let expired = t + expired * LEASE.as_millis() as i64;
        let mut tx = other_replica.begin().await.unwrap();
        sqlx::query(lock)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let none = tokio::time::timeout(Duration::from_secs(5), queue.claim("w", LEASE, expired))
            .await
            .expect("the claim does not wait for the locked row")
            .unwrap();
        assert!(none.is_none());
        assert_eq!(
            queue.get(id).await.unwrap().unwrap().state,
            JobState::Running
        );
        tx.rollback().await.unwrap();
        let claimed = queue.claim(worker, LEASE, expired).await.unwrap();
        if worker == "concludes" {
            assert!(claimed.expect("handed out to conclude").conclude_only);
        } else {
            assert!(claimed.is_none());
        }
    }
    let dead = queue.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert!(
        dead.last_error
            .unwrap()
            .contains("lease of worker concludes expired")
    );
    store.finish().await;
}

/// A deadlock between a queue transaction and another session (here: an uninstall's drop and a
/// session locking the same two jobs in the opposite order) is broken by the server aborting
/// one side; the queue runs its aborted transaction again instead of failing the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transaction_aborted_by_a_deadlock_is_retried() {
    let store = Store::new(StoreKind::Postgres).await;
    let queue = store.queue().await;
    let first = queue.enqueue(job(1, Some(5))).await.unwrap().id;
    let second = queue.enqueue(job(1, Some(6))).await.unwrap().id;

    let mut other = admin(pg(&store)).await;
    let mut tx = other.begin().await.unwrap();
    sqlx::query("UPDATE jobs SET updated_at_ms = 0 WHERE id = $1")
        .bind(second)
        .execute(&mut *tx)
        .await
        .unwrap();
    // The drop updates `first`, then waits for `second`.
    let dropping = tokio::spawn({
        let queue = queue.clone();
        async move { queue.drop_installation("github", 7).await }
    });
    let mut watcher = admin(pg(&store)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap()
        .get("n");
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the drop never waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Now this session waits for `first`: a deadlock, which the server breaks by aborting the
    // drop (whose wait is older, so its deadlock check runs first) or this session.
    let ours = sqlx::query("UPDATE jobs SET updated_at_ms = 0 WHERE id = $1")
        .bind(first)
        .execute(&mut *tx)
        .await;
    match ours {
        Ok(_) => tx.commit().await.unwrap(),
        Err(err) => {
            assert!(err.to_string().contains("deadlock"), "{err}");
            drop(tx);
        }
    }
    let outcome = dropping
        .await
        .unwrap()
        .expect("the drop succeeds after a retry");
    assert_eq!(outcome.dropped, vec![first, second]);
    for id in [first, second] {
        assert_eq!(
            queue.get(id).await.unwrap().unwrap().state,
            JobState::Dropped
        );
    }
    store.finish().await;
}

/// The queue's sessions run READ COMMITTED, which its concurrency relies on, even where the
/// database's default is stricter (under SERIALIZABLE, racing claims would fail instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_use_read_committed_whatever_the_database_default() {
    let store = Store::new(StoreKind::Postgres).await;
    let db = pg(&store);
    let mut server = sqlx::PgConnection::connect(&db.server_url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" SET default_transaction_isolation = 'serializable'",
        db.name
    )))
    .execute(&mut server)
    .await
    .unwrap();
    scenarios::replicas_claim_every_job_exactly_once(&store).await;
    scenarios::concurrent_superseding_enqueues_leave_the_newest_job(&store).await;
    store.finish().await;
}

/// Replicas starting together against an empty database: each connects, the schema is
/// created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_migrate_once() {
    let store = Store::new(StoreKind::Postgres).await;
    let url = store.url();
    let mut starts = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        starts.push(tokio::spawn(async move { Queue::connect(&url).await }));
    }
    let mut replicas = Vec::new();
    for start in starts {
        replicas.push(start.await.unwrap().expect("every replica starts"));
    }
    let mut conn = admin(pg(&store)).await;
    let rows = sqlx::query("SELECT version, name FROM schema_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let applied: Vec<(i64, String)> = rows
        .iter()
        .map(|row| (row.get("version"), row.get("name")))
        .collect();
    assert_eq!(
        applied,
        vec![
            (1, "init".to_owned()),
            (2, "pr_head_prs".to_owned()),
            (3, "deferrals".to_owned()),
            (4, "ownership".to_owned()),
            (5, "dashboard".to_owned()),
            (6, "dashboard_rollups".to_owned())
        ]
    );
    // And they share one queue.
    let id = replicas[3].enqueue(job(1, Some(1))).await.unwrap().id;
    assert_eq!(
        replicas[5]
            .claim("w", LEASE, now_ms())
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    store.finish().await;
}

/// A database migrated by a newer kubeward is refused rather than used.
#[tokio::test]
async fn newer_schema_is_refused() {
    let store = Store::new(StoreKind::Postgres).await;
    store.queue().await;
    let mut conn = admin(pg(&store)).await;
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (99, 'future', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let err = Queue::connect(&store.url()).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::SchemaTooNew {
                found: 99,
                supported: 6
            }
        ),
        "{err}"
    );
    store.finish().await;
}

/// The password of the URL shows up in no error and no `Debug` output.
#[tokio::test]
async fn passwords_stay_out_of_errors_and_debug_output() {
    let store = Store::new(StoreKind::Postgres).await;
    let mut url = reqwest::Url::parse(&store.url()).unwrap();
    let password = url
        .password()
        .expect("the test server uses a password")
        .to_owned();

    let queue = Queue::connect(url.as_str()).await.unwrap();
    assert!(!format!("{queue:?}").contains(&password), "{queue:?}");

    url.set_password(Some("wrong-Pa55word")).unwrap();
    let err = Queue::connect(url.as_str()).await.unwrap_err();
    assert!(matches!(err, QueueError::Connect(_)), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("wrong-Pa55word"), "{shown}");
    assert!(shown.contains("password authentication failed"), "{shown}");

    // `postgresql://` is the same backend.
    let alias = store.url().replacen("postgres://", "postgresql://", 1);
    let queue = Queue::connect(&alias).await.unwrap();
    assert!(queue.record_delivery("github", "d").await.unwrap());
    store.finish().await;
}

/// PostgreSQL text cannot hold NUL bytes; an error message quoting a binary body still fails
/// the job cleanly.
#[tokio::test]
async fn errors_with_nul_bytes_are_stored() {
    let store = Store::new(StoreKind::Postgres).await;
    let queue = store.queue().await;
    let t = now_ms();
    let id = queue.enqueue(job(1, Some(1))).await.unwrap().id;
    queue.claim("w", LEASE, t).await.unwrap().unwrap();
    let outcome = queue.fail(id, "w", "bad body: a\0b", t).await.unwrap();
    assert!(matches!(outcome, FailOutcome::Retry { .. }), "{outcome:?}");
    let failed = queue.get(id).await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Queued);
    assert_eq!(failed.last_error.as_deref(), Some("bad body: a\u{fffd}b"));
    store.finish().await;
}

/// During a rolling update, replicas of the previous version keep running against the migrated
/// database: the statement they use to remember a head must still work.
#[tokio::test]
async fn the_previous_versions_head_statement_still_runs_after_migrating() {
    let store = Store::new(StoreKind::Postgres).await;
    let queue = store.queue().await;
    let mut conn = admin(pg(&store)).await;
    // Verbatim from the first schema's version of the queue.
    let previous = "INSERT INTO pr_heads (forge, repo_id, head_sha, pr_number, updated_at_ms)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (forge, repo_id, head_sha)
        DO UPDATE SET pr_number = excluded.pr_number, updated_at_ms = excluded.updated_at_ms";
    for pr in [1_i64, 2] {
        sqlx::query(previous)
            .bind("github")
            .bind(1_i64)
            .bind("sha")
            .bind(pr)
            .bind(0_i64)
            .execute(&mut conn)
            .await
            .expect("the previous version's statement runs");
    }
    queue.remember_pr_head("github", 1, "sha", 3).await.unwrap();
    queue.remember_pr_head("github", 1, "sha", 4).await.unwrap();
    assert_eq!(
        queue.prs_for_head("github", 1, "sha").await.unwrap(),
        [3, 4]
    );
    store.finish().await;
}
