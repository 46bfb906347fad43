//! PostgreSQL backend: every SQL statement and migration the queue runs on PostgreSQL lives here.
//!
//! Several `kubeward serve` replicas share one database, so unlike SQLite (one writer at a time)
//! writers really run concurrently, under READ COMMITTED. What keeps the semantics equal to the
//! SQLite backend's:
//!
//! - **Claims** pick their row with `SELECT … FOR UPDATE SKIP LOCKED` inside the
//!   `UPDATE … WHERE id = (…) RETURNING`: a row another replica is claiming (or failing,
//!   superseding…) is skipped rather than waited for, so two replicas never get the same job
//!   and never block each other. Finalizing expired leases skips locked rows the same way.
//! - **Row changes conditioned on state** (`… WHERE state = 'running' AND locked_by = $2`) are
//!   re-checked by PostgreSQL against the newest row version after waiting for a concurrent
//!   writer, so a stale worker's heartbeat/complete/release after a takeover changes nothing.
//! - **`fail`** reads the held job `FOR UPDATE`, so nothing changes it between the read and the
//!   write that depends on it.
//! - **Supersede** takes a transaction-level advisory lock per pull request (also taken by
//!   `drop_pr`): two replicas enqueueing for the same PR at once are serialized, so the later
//!   job always supersedes the earlier one, as with SQLite's single writer. Locks are taken in
//!   key order, so deliveries touching several PRs cannot deadlock.
//! - **Migrations** run in one transaction holding `pg_advisory_xact_lock`, so replicas starting
//!   together apply each migration once; the others wait, then find nothing left to do.
//!
//! Times are the application's epoch milliseconds, never the server's clock, like SQLite.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};

use super::deferral_limit;
use super::error::db;
use super::sql::{
    COMPLETE, CURRENT_VERSION, DELIVERY_SEEN, DROP_INSTALLATION_QUEUED, DROP_PR_QUEUED,
    DROP_REPOSITORY_QUEUED, FINISH_WITH_ERROR, HEARTBEAT, PRS_FOR_HEAD, PRUNE_DELIVERIES,
    PRUNE_JOBS, PRUNE_PR_HEADS, RECORD_DELIVERY, RECORD_MIGRATION, REMEMBER_PR_HEAD, RETRY_LATER,
    SUPERSEDE_QUEUED, cancel_state, col, ids_of,
};
use super::{
    DeferOutcome, DropOutcome, DropScope, EnqueueOutcome, FailOutcome, Heartbeat, Job, JobState,
    NewJob, PruneOutcome, QueueConfig, QueueError, QueueStats,
};

/// Connections per replica: workers claim and heartbeat, webhooks enqueue, metrics read.
const POOL_SIZE: u32 = 10;
/// How long opening the first connection may take (a black-holed host must not hang startup).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Runs of a transaction [`retry_deadlocks`] allows.
const TRANSACTION_ATTEMPTS: u32 = 3;
/// `pg_advisory_xact_lock` key serializing migrations ("kubeward" in ASCII). The per-PR keys
/// are hashes and could in theory collide with it; that would only make one wait for the other.
const MIGRATION_LOCK: i64 = 0x6b75_6265_7761_7264;
/// Serializes writes of the dashboard's `daily_totals` ("kwdaily" in ASCII).
const LOCK_DAILY_TOTALS: &str = "SELECT pg_advisory_xact_lock(30249095522774137)";

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Applied in order, each at most once; append only, never edit a released one. Versions match
/// the SQLite backend's (the same schema change has the same number on both).
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "pr_head_prs",
        sql: include_str!("migrations/postgres/0002_pr_head_prs.sql"),
    },
    Migration {
        version: 3,
        name: "deferrals",
        sql: include_str!("migrations/postgres/0003_deferrals.sql"),
    },
    Migration {
        version: 4,
        name: "ownership",
        sql: include_str!("migrations/postgres/0004_ownership.sql"),
    },
    Migration {
        version: 5,
        name: "dashboard",
        sql: include_str!("migrations/postgres/0005_dashboard.sql"),
    },
    Migration {
        version: 6,
        name: "dashboard_rollups",
        sql: include_str!("migrations/postgres/0006_dashboard_rollups.sql"),
    },
];

const MIGRATION_LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS present";
const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version       BIGINT PRIMARY KEY,
    name          TEXT   NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

/// The columns [`job_from_row`] reads, in one place for every statement that returns a job.
/// The payload comes back as its stored text (`json` keeps it verbatim).
macro_rules! job_columns {
    () => {
        "id, kind, forge, installation_id, repo_id, pr_number, head_sha, payload::text AS payload, \
         state, attempts, last_error, cancel_requested, run_at_ms, deferrals, lease_expiries"
    };
}

/// Serializes supersede/drop of one pull request across replicas until the transaction ends.
const LOCK_PR: &str = "SELECT pg_advisory_xact_lock($1)";

const INSERT_JOB: &str = "INSERT INTO jobs (kind, forge, installation_id, repo_id, pr_number,
        head_sha, payload, state, attempts, run_at_ms, created_at_ms, updated_at_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7::json, 'queued', 0, $8, $9, $9)
    RETURNING id";

/// A job already being dropped stays dropped: the PR is gone, not merely outdated.
const SUPERSEDE_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = TRUE, cancel_reason = COALESCE(cancel_reason, 'superseded'),
        updated_at_ms = $4
    WHERE forge = $1 AND repo_id = $2 AND pr_number = $3 AND state = 'running'
    RETURNING id";

// Drops bind $1 forge, $2 now, then their scope.
const DROP_PR_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = TRUE, cancel_reason = 'dropped', updated_at_ms = $2
    WHERE forge = $1 AND repo_id = $3 AND pr_number = $4 AND state = 'running'
    RETURNING id";
const DROP_INSTALLATION_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = TRUE, cancel_reason = 'dropped', updated_at_ms = $2
    WHERE forge = $1 AND installation_id = $3 AND state = 'running'
    RETURNING id";
const DROP_REPOSITORY_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = TRUE, cancel_reason = 'dropped', updated_at_ms = $2
    WHERE forge = $1 AND repo_id = $3 AND state = 'running'
    RETURNING id";

/// Expired leases that must not be handed out again: cancel-requested jobs take their terminal
/// state; a job past its attempts was claimed only to conclude its check (see `CLAIM`), and
/// that worker died too, so it goes dead without a third try. Rows another replica holds
/// locked are left for the next claim.
const REAP_EXPIRED: &str = "UPDATE jobs
    SET state = CASE WHEN cancel_requested THEN COALESCE(cancel_reason, 'dropped')
                     ELSE 'dead' END,
        last_error = CASE WHEN cancel_requested THEN last_error
                          ELSE 'lease of worker ' || COALESCE(locked_by, '?')
                               || ' expired while concluding a job out of attempts'
                               || COALESCE('; previous error: ' || last_error, '') END,
        lease_until_ms = NULL, locked_by = NULL, finished_at_ms = $1, updated_at_ms = $1
    WHERE id IN (
        SELECT id FROM jobs
        WHERE state = 'running' AND lease_until_ms <= $1
          AND (cancel_requested OR attempts > $2)
        FOR UPDATE SKIP LOCKED)
    RETURNING id, state";

/// Oldest first by id (enqueue order), so a retry that becomes due is not starved by newer work.
/// One pull request's jobs run one at a time: a queued job waits while another job of the same
/// pull request holds a live lease, so two workers never publish to one PR at once.
/// An expired lease on the last attempt is taken once more, past `max_attempts` ($4): the
/// claimer only concludes it (`Job::conclude_only`). A queued job past its attempts is one
/// such conclusion that was deferred or released.
/// `SKIP LOCKED`: a row another replica is claiming right now is passed over, not waited for.
const CLAIM: &str = concat!(
    "UPDATE jobs
    SET state = 'running', lease_until_ms = $2, locked_by = $3, attempts = attempts + 1,
        lease_expiries = lease_expiries + CASE WHEN state = 'running' THEN 1 ELSE 0 END,
        updated_at_ms = $1
    WHERE id = (
        SELECT id FROM jobs j
        WHERE (j.state = 'queued' AND j.run_at_ms <= $1
               AND (j.pr_number IS NULL OR NOT EXISTS (
                   SELECT 1 FROM jobs r
                   WHERE r.state = 'running' AND r.lease_until_ms > $1
                     AND r.forge = j.forge AND r.repo_id = j.repo_id
                     AND r.pr_number = j.pr_number)))
           OR (j.state = 'running' AND j.lease_until_ms <= $1 AND NOT j.cancel_requested
               AND j.attempts <= $4)
        ORDER BY id
        LIMIT 1
        FOR UPDATE SKIP LOCKED)
    RETURNING ",
    job_columns!()
);

/// Locked until `fail`'s transaction ends, so its decision is applied to the row it read.
const HELD_JOB: &str = "SELECT attempts, cancel_requested, cancel_reason FROM jobs
    WHERE id = $1 AND state = 'running' AND locked_by = $2
    FOR UPDATE";

/// Locked until `defer`'s transaction ends, like `HELD_JOB`.
const HELD_FOR_DEFER: &str = "SELECT cancel_requested, cancel_reason, deferrals,
        deferred_since_ms FROM jobs
    WHERE id = $1 AND state = 'running' AND locked_by = $2
    FOR UPDATE";
/// Like a release (the attempt is not counted), but not before `$2`, and counted as a deferral.
const DEFER: &str = "UPDATE jobs
    SET state = 'queued', run_at_ms = $2, last_error = $3,
        attempts = GREATEST(attempts - 1, 0),
        deferrals = deferrals + 1, deferred_since_ms = COALESCE(deferred_since_ms, $4),
        lease_until_ms = NULL, locked_by = NULL, updated_at_ms = $4
    WHERE id = $1
    RETURNING deferrals";

/// Keeps `run_at_ms`, so the job goes back to its old place in line.
const RELEASE: &str = "UPDATE jobs
    SET state = CASE WHEN cancel_requested THEN COALESCE(cancel_reason, 'dropped')
                     ELSE 'queued' END,
        attempts = GREATEST(attempts - 1, 0),
        finished_at_ms = CASE WHEN cancel_requested THEN $3 ELSE NULL END,
        lease_until_ms = NULL, locked_by = NULL, updated_at_ms = $3
    WHERE id = $1 AND state = 'running' AND locked_by = $2";

/// A job has been waiting since it was enqueued or, if later, since its `run_at` (a retry).
const STATS: &str = "SELECT
        COUNT(*) FILTER (WHERE state = 'queued') AS queued,
        COUNT(*) FILTER (WHERE state = 'running') AS running,
        COUNT(*) FILTER (WHERE state = 'dead') AS dead,
        MIN(GREATEST(run_at_ms, created_at_ms))
            FILTER (WHERE state = 'queued' AND run_at_ms <= $1) AS oldest_runnable_since
    FROM jobs WHERE state IN ('queued', 'running', 'dead')";

const GET_JOB: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

const RETRY_DEAD: &str = "UPDATE jobs
    SET state = 'queued', attempts = 0, deferrals = 0, deferred_since_ms = NULL,
        lease_expiries = 0, run_at_ms = $2, cancel_requested = FALSE,
        cancel_reason = NULL, lease_until_ms = NULL, locked_by = NULL, finished_at_ms = NULL,
        updated_at_ms = $2
    WHERE id = $1 AND state = 'dead'";

/// `Debug` shows the pool's sizes and settings, never the connect options (which hold the
/// password).
#[derive(Debug, Clone)]
pub(super) struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    // The operations whose Rust is the same on both dialects (statements may differ).
    super::sql::shared_operations!();
    super::ownership::ownership_operations!(
        sqlx::Postgres,
        "SELECT CAST(CASE WHEN cancel_requested THEN 1 ELSE 0 END AS BIGINT) AS cancelled FROM jobs WHERE id = $1 FOR UPDATE",
        Some(LOCK_DAILY_TOTALS)
    );

    /// A write transaction; rows it changes are locked by the statements themselves.
    async fn begin_write(
        &self,
        op: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, QueueError> {
        self.pool.begin().await.map_err(db(op))
    }

    /// Opens `postgres://…` or `postgresql://…` (libpq-style URL), then migrates.
    ///
    /// The first connection is opened directly, so an unreachable server or a refused login
    /// fails at once with the server's reason; the pool then opens connections as needed.
    pub(super) async fn connect(url: &str) -> Result<PostgresBackend, QueueError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|err| QueueError::InvalidUrl(redact(&err.to_string(), url)))?
            // `fail` and supersede rely on READ COMMITTED re-checks and row locks; a server
            // default of REPEATABLE READ or SERIALIZABLE would turn races into errors instead.
            .options([("default_transaction_isolation", "read committed")]);
        if options.get_application_name().is_none() {
            options = options.application_name("kubeward");
        }

        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                QueueError::Connect(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no connection to {}:{} within {}s",
                        options.get_host(),
                        options.get_port(),
                        CONNECT_TIMEOUT.as_secs()
                    ),
                )))
            })?
            .map_err(QueueError::Connect)?;
        let migrated = migrate(&mut conn).await;
        // Best effort: the server drops the session anyway when the socket closes.
        let _ = conn.close().await;
        migrated?;

        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_lazy_with(options);
        Ok(PostgresBackend { pool })
    }

    pub(super) async fn enqueue(
        &self,
        job: &NewJob,
        payload: &str,
        now_ms: i64,
    ) -> Result<EnqueueOutcome, QueueError> {
        retry_deadlocks(move || self.enqueue_once(job, payload, now_ms)).await
    }

    async fn enqueue_once(
        &self,
        job: &NewJob,
        payload: &str,
        now_ms: i64,
    ) -> Result<EnqueueOutcome, QueueError> {
        let mut tx = self.pool.begin().await.map_err(db("begin enqueue"))?;
        lock_prs(&mut tx, [job]).await?;
        let outcome = enqueue_in(&mut tx, job, payload, now_ms).await?;
        tx.commit().await.map_err(db("commit enqueue"))?;
        Ok(outcome)
    }

    /// `jobs` pairs each job with its serialized payload.
    pub(super) async fn enqueue_delivery(
        &self,
        forge: &str,
        delivery_id: &str,
        jobs: &[(NewJob, String)],
        now_ms: i64,
    ) -> Result<Option<Vec<i64>>, QueueError> {
        retry_deadlocks(move || self.enqueue_delivery_once(forge, delivery_id, jobs, now_ms)).await
    }

    async fn enqueue_delivery_once(
        &self,
        forge: &str,
        delivery_id: &str,
        jobs: &[(NewJob, String)],
        now_ms: i64,
    ) -> Result<Option<Vec<i64>>, QueueError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("begin enqueue_delivery"))?;
        // A replica receiving the same delivery at once waits here on the primary key until
        // this transaction ends, then finds it recorded (or, after a rollback, records it).
        let recorded = sqlx::query(RECORD_DELIVERY)
            .bind(forge)
            .bind(delivery_id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await
            .map_err(db("record delivery"))?;
        if recorded.rows_affected() == 0 {
            // Dropping `tx` rolls back; nothing was written anyway.
            return Ok(None);
        }
        lock_prs(&mut tx, jobs.iter().map(|(job, _)| job)).await?;
        let mut ids = Vec::with_capacity(jobs.len());
        for (job, payload) in jobs {
            ids.push(enqueue_in(&mut tx, job, payload, now_ms).await?.id);
        }
        tx.commit().await.map_err(db("commit enqueue_delivery"))?;
        Ok(Some(ids))
    }

    pub(super) async fn claim(
        &self,
        worker_id: &str,
        lease_until: i64,
        max_attempts: i64,
        now_ms: i64,
    ) -> Result<Option<Job>, QueueError> {
        let reaped = sqlx::query(REAP_EXPIRED)
            .bind(now_ms)
            .bind(max_attempts)
            .fetch_all(&self.pool)
            .await
            .map_err(db("finalize expired jobs"))?;
        for row in &reaped {
            let id: i64 = row.try_get("id").map_err(db("finalize expired jobs"))?;
            let state: String = row.try_get("state").map_err(db("finalize expired jobs"))?;
            if state == JobState::Dead.as_str() {
                tracing::warn!(id, "job dead-lettered: the worker concluding it died too");
            } else {
                tracing::debug!(id, state, "canceled job's lease expired");
            }
        }

        let row = sqlx::query(CLAIM)
            .bind(now_ms)
            .bind(lease_until)
            .bind(worker_id)
            .bind(max_attempts)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("claim job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub(super) async fn fail(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        config: &QueueConfig,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        let error = without_nul(error);
        let error = error.as_ref();
        retry_deadlocks(move || self.fail_once(id, worker_id, error, Some(config), now_ms)).await
    }

    pub(super) async fn give_up(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        let error = without_nul(error);
        let error = error.as_ref();
        retry_deadlocks(move || self.fail_once(id, worker_id, error, None, now_ms)).await
    }

    pub(super) async fn defer(
        &self,
        id: i64,
        worker_id: &str,
        run_at_ms: i64,
        reason: &str,
        config: &QueueConfig,
        now_ms: i64,
    ) -> Result<DeferOutcome, QueueError> {
        let reason = without_nul(reason);
        let reason = reason.as_ref();
        retry_deadlocks(move || self.defer_once(id, worker_id, run_at_ms, reason, config, now_ms))
            .await
    }

    /// Queued jobs matching `scope` become `dropped`; running ones get `cancel_requested`.
    pub(super) async fn drop_jobs(
        &self,
        forge: &str,
        scope: DropScope,
        now_ms: i64,
    ) -> Result<DropOutcome, QueueError> {
        retry_deadlocks(move || self.drop_jobs_once(forge, scope, now_ms)).await
    }

    async fn drop_jobs_once(
        &self,
        forge: &str,
        scope: DropScope,
        now_ms: i64,
    ) -> Result<DropOutcome, QueueError> {
        let (op, statements) = match scope {
            DropScope::Pr { .. } => ("drop_pr", [DROP_PR_QUEUED, DROP_PR_RUNNING]),
            DropScope::Installation(_) => (
                "drop_installation",
                [DROP_INSTALLATION_QUEUED, DROP_INSTALLATION_RUNNING],
            ),
            DropScope::Repository(_) => (
                "drop_repository",
                [DROP_REPOSITORY_QUEUED, DROP_REPOSITORY_RUNNING],
            ),
        };
        let mut tx = self.pool.begin().await.map_err(db(op))?;
        if let DropScope::Pr { repo_id, pr_number } = scope {
            // Not interleaved with a concurrent supersede of the same PR.
            sqlx::query(LOCK_PR)
                .bind(pr_lock_key(forge, repo_id, pr_number))
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
        }
        let mut ids = Vec::with_capacity(2);
        for statement in statements {
            // Every drop statement binds $1 forge, $2 now, then its scope.
            let query = sqlx::query(statement).bind(forge).bind(now_ms);
            let query = match scope {
                DropScope::Pr { repo_id, pr_number } => query.bind(repo_id).bind(pr_number),
                DropScope::Installation(id) | DropScope::Repository(id) => query.bind(id),
            };
            let rows = query.fetch_all(&mut *tx).await.map_err(db(op))?;
            ids.push(ids_of(&rows).map_err(db(op))?);
        }
        tx.commit().await.map_err(db(op))?;
        let cancel_requested = ids.pop().unwrap_or_default();
        let dropped = ids.pop().unwrap_or_default();
        Ok(DropOutcome {
            dropped,
            cancel_requested,
        })
    }
}

/// Runs a transactional operation again when PostgreSQL aborted it to break a deadlock (or,
/// under a stricter isolation than ours, a serialization failure): the transaction rolled back
/// whole, so running it again is safe. Row locks are taken in statement order, so e.g. a
/// delivery superseding two PRs and an uninstall dropping both can each hold a row the other
/// needs; the server picks one to abort after `deadlock_timeout`.
async fn retry_deadlocks<T, F, Fut>(mut operation: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let mut attempt = 1;
    loop {
        match operation().await {
            Err(err) if attempt < TRANSACTION_ATTEMPTS && is_deadlock(&err) => {
                tracing::debug!(attempt, error = %err, "queue transaction aborted; retrying");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// `deadlock_detected` or `serialization_failure`.
fn is_deadlock(err: &QueueError) -> bool {
    let QueueError::Database {
        source: sqlx::Error::Database(err),
        ..
    } = err
    else {
        return false;
    };
    matches!(err.code().as_deref(), Some("40P01" | "40001"))
}

/// Brings the schema to the newest version in one transaction holding an advisory lock: replicas
/// starting at once take turns, and only the first applies anything.
async fn migrate(conn: &mut PgConnection) -> Result<(), QueueError> {
    let mut tx = conn.begin().await.map_err(db("begin migration"))?;
    sqlx::query(MIGRATION_LOCK_SQL)
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db("lock schema migrations"))?;
    // Created under the lock: two concurrent `CREATE TABLE IF NOT EXISTS` can still collide.
    // Checked first, so a role without CREATE rights can use an already migrated database.
    let present: bool = sqlx::query(MIGRATIONS_TABLE_EXISTS)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get("present"))
        .map_err(db("look up schema_migrations"))?;
    if !present {
        sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(db("create schema_migrations"))?;
    }
    let current: i64 = sqlx::query(CURRENT_VERSION)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get("version"))
        .map_err(db("read schema version"))?;
    let supported = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > supported {
        return Err(QueueError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let failed = |source| QueueError::Migration {
            version: migration.version,
            name: migration.name,
            source,
        };
        sqlx::raw_sql(migration.sql)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query(RECORD_MIGRATION)
            .bind(migration.version)
            .bind(migration.name)
            .bind(super::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied queue migration"
        );
    }
    tx.commit().await.map_err(db("commit migration"))?;
    Ok(())
}

/// The advisory lock key of one pull request: FNV-1a over its identity, the same in every
/// replica and build.
fn pr_lock_key(forge: &str, repo_id: i64, pr_number: i64) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let bytes = forge
        .bytes()
        // 0xff never occurs in UTF-8, so the forge name cannot run into the numbers.
        .chain([0xff])
        .chain(repo_id.to_le_bytes())
        .chain(pr_number.to_le_bytes());
    let hash = bytes.fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    hash.cast_signed()
}

/// Takes the PR locks of every superseding job, in key order (no deadlock between two
/// transactions locking the same PRs).
async fn lock_prs<'j>(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    jobs: impl IntoIterator<Item = &'j NewJob>,
) -> Result<(), QueueError> {
    let mut keys: Vec<i64> = jobs
        .into_iter()
        .filter(|job| job.supersedes)
        .filter_map(|job| {
            job.pr_number
                .map(|pr| pr_lock_key(&job.forge, job.repo_id, pr))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query(LOCK_PR)
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(db("lock pull request"))?;
    }
    Ok(())
}

/// PostgreSQL text cannot hold NUL, which an error quoting a response body might contain.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// `message` without the password of `url`, should a parser ever quote it.
fn redact(message: &str, url: &str) -> String {
    match password_of(url) {
        Some(password) => message.replace(password, "***"),
        None => message.to_owned(),
    }
}

/// The password part of `scheme://user:password@host…`, as written (still percent-encoded).
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// `cancel_requested`, a boolean.
fn cancel_flag(row: &PgRow, op: &'static str) -> Result<bool, QueueError> {
    col(row, "cancel_requested", op)
}

fn job_from_row(row: &PgRow) -> Result<Job, QueueError> {
    super::sql::job_from_row(row, cancel_flag(row, "decode job")?)
}

super::sql::shared_functions!(sqlx::Postgres);
super::ownership::owned_finding_decoder!(PgRow);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_found_and_redacted() {
        let url = "postgres://kube:s3cr%40t@db:5432/queue?sslmode=require";
        assert_eq!(password_of(url), Some("s3cr%40t"));
        assert_eq!(redact("bad s3cr%40t here", url), "bad *** here");
        assert_eq!(password_of("postgres://kube@db/queue"), None);
        assert_eq!(password_of("postgres://db/queue?user=a:b@c"), None);
        assert_eq!(password_of("postgresql://:pw@db"), Some("pw"));
    }

    #[test]
    fn pr_lock_keys_are_stable_and_distinct() {
        // Fixed across builds and replicas: changing the hash would let an old and a new
        // replica supersede the same PR concurrently during a rolling upgrade.
        assert_eq!(pr_lock_key("github", 1, 2), 8_574_868_566_956_108_116);
        assert_ne!(pr_lock_key("github", 1, 2), pr_lock_key("github", 2, 1));
        assert_ne!(pr_lock_key("github", 1, 2), pr_lock_key("gitlab", 1, 2));
        assert_ne!(pr_lock_key("github", 1, 2), MIGRATION_LOCK);
    }

    #[test]
    fn nul_bytes_are_replaced() {
        assert_eq!(without_nul("a\0b"), "a\u{fffd}b");
        assert!(matches!(without_nul("ab"), Cow::Borrowed("ab")));
    }
}
