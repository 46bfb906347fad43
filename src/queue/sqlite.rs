//! SQLite backend: every SQL statement and migration the queue runs on SQLite lives here.
//!
//! SQLite serializes writers, so a single `UPDATE … WHERE id = (SELECT … LIMIT 1) RETURNING …`
//! is an atomic claim. Multi-statement operations use `BEGIN IMMEDIATE`, which takes the write
//! lock up front: a deferred transaction that reads first and then writes can fail with
//! `SQLITE_BUSY` without waiting for `busy_timeout`.
//!
//! The statements use `$n` placeholders and integer epoch milliseconds so a PostgreSQL backend
//! can reuse most of them; what differs there is the claim (`FOR UPDATE SKIP LOCKED`) and the DDL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

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

/// How long a statement waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections per pool on a file: WAL lets readers run beside the one writer.
const FILE_POOL_SIZE: u32 = 8;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Applied in order, each at most once; append only, never edit a released one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "pr_head_prs",
        sql: include_str!("migrations/sqlite/0002_pr_head_prs.sql"),
    },
    Migration {
        version: 3,
        name: "deferrals",
        sql: include_str!("migrations/sqlite/0003_deferrals.sql"),
    },
    Migration {
        version: 4,
        name: "ownership",
        sql: include_str!("migrations/sqlite/0004_ownership.sql"),
    },
    Migration {
        version: 5,
        name: "dashboard",
        sql: include_str!("migrations/sqlite/0005_dashboard.sql"),
    },
    Migration {
        version: 6,
        name: "dashboard_rollups",
        sql: include_str!("migrations/sqlite/0006_dashboard_rollups.sql"),
    },
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version       INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL,
    applied_at_ms INTEGER NOT NULL
)";

/// The columns [`job_from_row`] reads, in one place for every statement that returns a job.
macro_rules! job_columns {
    () => {
        "id, kind, forge, installation_id, repo_id, pr_number, head_sha, payload, state, \
         attempts, last_error, cancel_requested, run_at_ms, deferrals, lease_expiries"
    };
}

const INSERT_JOB: &str = "INSERT INTO jobs (kind, forge, installation_id, repo_id, pr_number,
        head_sha, payload, state, attempts, run_at_ms, created_at_ms, updated_at_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $9, $9)
    RETURNING id";

/// A job already being dropped stays dropped: the PR is gone, not merely outdated.
const SUPERSEDE_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = 1, cancel_reason = COALESCE(cancel_reason, 'superseded'),
        updated_at_ms = $4
    WHERE forge = $1 AND repo_id = $2 AND pr_number = $3 AND state = 'running'
    RETURNING id";

// Drops bind $1 forge, $2 now, then their scope.
const DROP_PR_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = 1, cancel_reason = 'dropped', updated_at_ms = $2
    WHERE forge = $1 AND repo_id = $3 AND pr_number = $4 AND state = 'running'
    RETURNING id";
const DROP_INSTALLATION_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = 1, cancel_reason = 'dropped', updated_at_ms = $2
    WHERE forge = $1 AND installation_id = $3 AND state = 'running'
    RETURNING id";
const DROP_REPOSITORY_RUNNING: &str = "UPDATE jobs
    SET cancel_requested = 1, cancel_reason = 'dropped', updated_at_ms = $2
    WHERE forge = $1 AND repo_id = $3 AND state = 'running'
    RETURNING id";

/// Expired leases that must not be handed out again: cancel-requested jobs take their terminal
/// state; a job past its attempts was claimed only to conclude its check (see `CLAIM`), and
/// that worker died too, so it goes dead without a third try.
const REAP_EXPIRED: &str = "UPDATE jobs
    SET state = CASE WHEN cancel_requested = 1 THEN COALESCE(cancel_reason, 'dropped')
                     ELSE 'dead' END,
        last_error = CASE WHEN cancel_requested = 1 THEN last_error
                          ELSE 'lease of worker ' || COALESCE(locked_by, '?')
                               || ' expired while concluding a job out of attempts'
                               || COALESCE('; previous error: ' || last_error, '') END,
        lease_until_ms = NULL, locked_by = NULL, finished_at_ms = $1, updated_at_ms = $1
    WHERE state = 'running' AND lease_until_ms <= $1
      AND (cancel_requested = 1 OR attempts > $2)
    RETURNING id, state";

/// Oldest first by id (enqueue order), so a retry that becomes due is not starved by newer work.
/// One pull request's jobs run one at a time: a queued job waits while another job of the same
/// pull request holds a live lease, so two workers never publish to one PR at once.
/// An expired lease on the last attempt is taken once more, past `max_attempts` ($4): the
/// claimer only concludes it (`Job::conclude_only`). A queued job past its attempts is one
/// such conclusion that was deferred or released.
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
           OR (j.state = 'running' AND j.lease_until_ms <= $1 AND j.cancel_requested = 0
               AND j.attempts <= $4)
        ORDER BY id
        LIMIT 1)
    RETURNING ",
    job_columns!()
);

const HELD_JOB: &str = "SELECT attempts, cancel_requested, cancel_reason FROM jobs
    WHERE id = $1 AND state = 'running' AND locked_by = $2";

const HELD_FOR_DEFER: &str = "SELECT cancel_requested, cancel_reason, deferrals,
        deferred_since_ms FROM jobs
    WHERE id = $1 AND state = 'running' AND locked_by = $2";
/// Like a release (the attempt is not counted), but not before `$2`, and counted as a deferral.
const DEFER: &str = "UPDATE jobs
    SET state = 'queued', run_at_ms = $2, last_error = $3,
        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
        deferrals = deferrals + 1, deferred_since_ms = COALESCE(deferred_since_ms, $4),
        lease_until_ms = NULL, locked_by = NULL, updated_at_ms = $4
    WHERE id = $1
    RETURNING deferrals";

/// Keeps `run_at_ms`, so the job goes back to its old place in line.
const RELEASE: &str = "UPDATE jobs
    SET state = CASE WHEN cancel_requested = 1 THEN COALESCE(cancel_reason, 'dropped')
                     ELSE 'queued' END,
        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
        finished_at_ms = CASE WHEN cancel_requested = 1 THEN $3 ELSE NULL END,
        lease_until_ms = NULL, locked_by = NULL, updated_at_ms = $3
    WHERE id = $1 AND state = 'running' AND locked_by = $2";

/// A job has been waiting since it was enqueued or, if later, since its `run_at` (a retry).
/// Two-argument `MAX` is SQLite's scalar max (PostgreSQL: `GREATEST`).
const STATS: &str = "SELECT
        COUNT(CASE WHEN state = 'queued' THEN 1 END) AS queued,
        COUNT(CASE WHEN state = 'running' THEN 1 END) AS running,
        COUNT(CASE WHEN state = 'dead' THEN 1 END) AS dead,
        MIN(CASE WHEN state = 'queued' AND run_at_ms <= $1
                 THEN MAX(run_at_ms, created_at_ms) END) AS oldest_runnable_since
    FROM jobs WHERE state IN ('queued', 'running', 'dead')";

const GET_JOB: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");

const RETRY_DEAD: &str = "UPDATE jobs
    SET state = 'queued', attempts = 0, deferrals = 0, deferred_since_ms = NULL,
        lease_expiries = 0, run_at_ms = $2, cancel_requested = 0,
        cancel_reason = NULL, lease_until_ms = NULL, locked_by = NULL, finished_at_ms = NULL,
        updated_at_ms = $2
    WHERE id = $1 AND state = 'dead'";

#[derive(Debug, Clone)]
pub(super) struct SqliteBackend {
    pool: SqlitePool,
    /// For an in-memory database: a connection outside the pool that keeps it alive. The pool
    /// may close its connection (a query cancelled mid-flight, say) and open another, which
    /// without this would find a new, empty database.
    _keeper: Option<std::sync::Arc<tokio::sync::Mutex<sqlx::SqliteConnection>>>,
}

impl SqliteBackend {
    // The operations whose Rust is the same on both dialects (statements may differ).
    super::sql::shared_operations!();
    super::ownership::ownership_operations!(
        sqlx::Sqlite,
        "SELECT cancel_requested AS cancelled FROM jobs WHERE id = $1",
        None
    );

    /// A write transaction: SQLite takes its one writer lock at once, so the reads inside it
    /// cannot go stale.
    async fn begin_write(
        &self,
        op: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, QueueError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(op))
    }

    /// Opens `sqlite://path` (creating file and directory) or `sqlite::memory:`, then migrates.
    pub(super) async fn connect(url: &str) -> Result<SqliteBackend, QueueError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| QueueError::InvalidUrl("expected a sqlite: URL".into()))?;
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        let in_memory = database == ":memory:" || params.split('&').any(|p| p == "mode=memory");
        if database.is_empty() && !in_memory {
            return Err(QueueError::InvalidUrl(
                "sqlite URL has no path; use sqlite://PATH or sqlite::memory:".into(),
            ));
        }

        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| QueueError::InvalidUrl(err.to_string()))?
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);

        let mut keeper = None;
        let pool = if in_memory {
            // sqlx names each in-memory database uniquely and shares it between connections
            // with the same options; it lives as long as one of them is open.
            use sqlx::ConnectOptions;
            let kept = options.connect().await.map_err(QueueError::Connect)?;
            keeper = Some(std::sync::Arc::new(tokio::sync::Mutex::new(kept)));
            // One pooled connection, forever: several would bring shared-cache table locks.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            if let Some(dir) = options.get_filename().parent()
                && !dir.as_os_str().is_empty()
            {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|source| QueueError::CreateDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // Durable across process crashes; WAL + NORMAL may lose the last commits only on
                // power loss, and a lost job is recovered by the forge's next event.
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new()
                .max_connections(FILE_POOL_SIZE)
                .connect_with(options)
                .await
        }
        .map_err(QueueError::Connect)?;

        let backend = SqliteBackend {
            pool,
            _keeper: keeper,
        };
        backend.migrate().await?;
        Ok(backend)
    }

    /// Brings the schema to the newest version, in one write transaction so two processes
    /// starting at once do not both apply a migration.
    async fn migrate(&self) -> Result<(), QueueError> {
        sqlx::raw_sql(CREATE_MIGRATIONS_TABLE)
            .execute(&self.pool)
            .await
            .map_err(db("create schema_migrations"))?;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin migration"))?;
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

    pub(super) async fn enqueue(
        &self,
        job: &NewJob,
        payload: &str,
        now_ms: i64,
    ) -> Result<EnqueueOutcome, QueueError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin enqueue"))?;
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin enqueue_delivery"))?;
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

        // fetch_all, not fetch_optional: the statement must run to completion so it does not
        // keep the write transaction open.
        let rows = sqlx::query(CLAIM)
            .bind(now_ms)
            .bind(lease_until)
            .bind(worker_id)
            .bind(max_attempts)
            .fetch_all(&self.pool)
            .await
            .map_err(db("claim job"))?;
        rows.first().map(job_from_row).transpose()
    }

    pub(super) async fn fail(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        config: &QueueConfig,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        self.fail_once(id, worker_id, error, Some(config), now_ms)
            .await
    }

    pub(super) async fn give_up(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        self.fail_once(id, worker_id, error, None, now_ms).await
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
        self.defer_once(id, worker_id, run_at_ms, reason, config, now_ms)
            .await
    }

    /// Queued jobs matching `scope` become `dropped`; running ones get `cancel_requested`.
    pub(super) async fn drop_jobs(
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
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db(op))?;
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

/// `cancel_requested`, stored as an integer.
fn cancel_flag(row: &SqliteRow, op: &'static str) -> Result<bool, QueueError> {
    Ok(col::<_, i64>(row, "cancel_requested", op)? != 0)
}

fn job_from_row(row: &SqliteRow) -> Result<Job, QueueError> {
    super::sql::job_from_row(row, cancel_flag(row, "decode job")?)
}

super::sql::shared_functions!(sqlx::Sqlite);
super::ownership::owned_finding_decoder!(sqlx::sqlite::SqliteRow);

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    #[tokio::test]
    async fn an_in_memory_queue_survives_its_pooled_connection_closing() {
        let backend = SqliteBackend::connect("sqlite::memory:")
            .await
            .expect("connect");
        // What a query cancelled mid-flight can do: the pool's one connection goes away.
        let conn = backend.pool.acquire().await.expect("acquire");
        conn.detach().close().await.expect("close");
        let count: i64 = sqlx::query("SELECT count(*) AS n FROM jobs")
            .fetch_one(&backend.pool)
            .await
            .and_then(|row| row.try_get("n"))
            .expect("the schema is still there");
        assert_eq!(count, 0);
    }
}
