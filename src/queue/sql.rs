//! What both dialects share: the statements that read the same in SQLite and PostgreSQL
//! (both take `$n` parameters), and the Rust that turns rows into jobs. Each backend keeps only
//! what differs: its DDL and migrations, claiming (PostgreSQL's `FOR UPDATE SKIP LOCKED` vs
//! SQLite's single writer), locks, and the statements whose types differ (booleans, `json`).

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::error::db;
use super::{Job, JobState, QueueError};

pub(super) const CURRENT_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations";

pub(super) const RECORD_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)";

pub(super) const DELIVERY_SEEN: &str =
    "SELECT 1 AS seen FROM deliveries WHERE forge = $1 AND delivery_id = $2";

pub(super) const RECORD_DELIVERY: &str =
    "INSERT INTO deliveries (forge, delivery_id, received_at_ms)
    VALUES ($1, $2, $3) ON CONFLICT (forge, delivery_id) DO NOTHING";

pub(super) const SUPERSEDE_QUEUED: &str = "UPDATE jobs
    SET state = 'superseded', finished_at_ms = $4, updated_at_ms = $4
    WHERE forge = $1 AND repo_id = $2 AND pr_number = $3 AND state = 'queued'
    RETURNING id";

pub(super) const DROP_PR_QUEUED: &str = "UPDATE jobs
    SET state = 'dropped', finished_at_ms = $2, updated_at_ms = $2
    WHERE forge = $1 AND repo_id = $3 AND pr_number = $4 AND state = 'queued'
    RETURNING id";

pub(super) const DROP_INSTALLATION_QUEUED: &str = "UPDATE jobs
    SET state = 'dropped', finished_at_ms = $2, updated_at_ms = $2
    WHERE forge = $1 AND installation_id = $3 AND state = 'queued'
    RETURNING id";

pub(super) const DROP_REPOSITORY_QUEUED: &str = "UPDATE jobs
    SET state = 'dropped', finished_at_ms = $2, updated_at_ms = $2
    WHERE forge = $1 AND repo_id = $3 AND state = 'queued'
    RETURNING id";

pub(super) const HEARTBEAT: &str = "UPDATE jobs SET lease_until_ms = $3, updated_at_ms = $4
    WHERE id = $1 AND state = 'running' AND locked_by = $2
    RETURNING cancel_requested";

pub(super) const COMPLETE: &str = "UPDATE jobs
    SET state = 'done', lease_until_ms = NULL, locked_by = NULL,
        finished_at_ms = $3, updated_at_ms = $3
    WHERE id = $1 AND state = 'running' AND locked_by = $2";

pub(super) const FINISH_WITH_ERROR: &str = "UPDATE jobs
    SET state = $2, last_error = $3, lease_until_ms = NULL, locked_by = NULL,
        finished_at_ms = $4, updated_at_ms = $4
    WHERE id = $1";

pub(super) const RETRY_LATER: &str = "UPDATE jobs
    SET state = 'queued', run_at_ms = $2, last_error = $3, lease_until_ms = NULL,
        locked_by = NULL, updated_at_ms = $4
    WHERE id = $1";

pub(super) const REMEMBER_PR_HEAD: &str =
    "INSERT INTO pr_head_prs (forge, repo_id, head_sha, pr_number,
        updated_at_ms)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (forge, repo_id, head_sha, pr_number)
    DO UPDATE SET updated_at_ms = excluded.updated_at_ms";

pub(super) const PRS_FOR_HEAD: &str = "SELECT pr_number FROM pr_head_prs
    WHERE forge = $1 AND repo_id = $2 AND head_sha = $3 ORDER BY pr_number";

pub(super) const PRUNE_DELIVERIES: &str = "DELETE FROM deliveries WHERE received_at_ms < $1";

pub(super) const PRUNE_JOBS: &str = "DELETE FROM jobs
    WHERE state IN ('done', 'superseded', 'dropped') AND finished_at_ms < $1";

pub(super) const PRUNE_PR_HEADS: &str = "DELETE FROM pr_head_prs WHERE updated_at_ms < $1";

/// The terminal state a cancel-requested job takes.
pub(super) fn cancel_state(id: i64, reason: Option<&str>) -> Result<JobState, QueueError> {
    match reason {
        Some(text) => parse_state(id, text),
        None => Ok(JobState::Dropped),
    }
}

pub(super) fn parse_state(id: i64, text: &str) -> Result<JobState, QueueError> {
    text.parse()
        .map_err(|err: super::UnknownJobState| QueueError::CorruptRow {
            id,
            detail: err.to_string(),
        })
}

/// The `id` column of `RETURNING id` rows, ascending (RETURNING order is unspecified).
pub(super) fn ids_of<R>(rows: &[R]) -> Result<Vec<i64>, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let mut ids = rows
        .iter()
        .map(|row| row.try_get::<i64, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    Ok(ids)
}

/// One column of `row`, with the queue operation named in the error.
pub(super) fn col<'r, R, T>(row: &'r R, name: &str, op: &'static str) -> Result<T, QueueError>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    row.try_get(name).map_err(db(op))
}

/// A job from a row of `job_columns!()`; `cancel_requested` is decoded by the dialect
/// (SQLite stores it as an integer, PostgreSQL as a boolean).
pub(super) fn job_from_row<'r, R>(row: &'r R, cancel_requested: bool) -> Result<Job, QueueError>
where
    R: Row,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    const OP: &str = "decode job";
    let id: i64 = col(row, "id", OP)?;
    let payload: String = col(row, "payload", OP)?;
    let state: String = col(row, "state", OP)?;
    Ok(Job {
        id,
        kind: col(row, "kind", OP)?,
        forge: col(row, "forge", OP)?,
        installation_id: col(row, "installation_id", OP)?,
        repo_id: col(row, "repo_id", OP)?,
        pr_number: col(row, "pr_number", OP)?,
        head_sha: col(row, "head_sha", OP)?,
        payload: serde_json::from_str(&payload).map_err(|err| QueueError::CorruptRow {
            id,
            detail: format!("payload is not JSON: {err}"),
        })?,
        state: parse_state(id, &state)?,
        attempts: col(row, "attempts", OP)?,
        last_error: col(row, "last_error", OP)?,
        cancel_requested,
        run_at_ms: col(row, "run_at_ms", OP)?,
        deferrals: col(row, "deferrals", OP)?,
        lease_expiries: col(row, "lease_expiries", OP)?,
        conclude_only: false,
    })
}

/// The operations whose Rust is the same on both backends, written once and expanded in each
/// backend's `impl`. Statement names resolve where it is expanded, so a dialect's own `STATS`,
/// `GET_JOB`, `RELEASE` or `RETRY_DEAD` is used; `self.pool` is that backend's pool, `cancel_flag` reads its `cancel_requested` and `self.begin_write` opens its write transaction.
macro_rules! shared_operations {
    () => {
    /// A failed attempt: retried per `retry` while attempts are left; without `retry`, dead at
    /// once.
    async fn fail_once(
        &self,
        id: i64,
        worker_id: &str,
        error: &str,
        retry: Option<&QueueConfig>,
        now_ms: i64,
    ) -> Result<FailOutcome, QueueError> {
        let mut tx = self.begin_write("begin fail").await?;
        let row = sqlx::query(HELD_JOB)
            .bind(id)
            .bind(worker_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("fail job"))?;
        let Some(row) = row else {
            return Ok(FailOutcome::NotHeld);
        };
        let attempts: i64 = row.try_get("attempts").map_err(db("fail job"))?;
        let cancel = cancel_flag(&row, "fail job")?;
        let reason: Option<String> = row.try_get("cancel_reason").map_err(db("fail job"))?;

        let outcome = match retry {
            _ if cancel => {
                let state = cancel_state(id, reason.as_deref())?;
                finish_with_error(&mut tx, id, state, error, now_ms).await?;
                FailOutcome::Canceled { state }
            }
            Some(config) if attempts < i64::from(config.max_attempts) => {
                let delay = i64::try_from(config.backoff_ms(attempts)).unwrap_or(i64::MAX);
                let run_at_ms = now_ms.saturating_add(delay);
                sqlx::query(RETRY_LATER)
                    .bind(id)
                    .bind(run_at_ms)
                    .bind(error)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("fail job"))?;
                FailOutcome::Retry {
                    attempts,
                    run_at_ms,
                }
            }
            _ => {
                finish_with_error(&mut tx, id, JobState::Dead, error, now_ms).await?;
                tracing::warn!(id, attempts, error = %error, "job dead-lettered");
                FailOutcome::Dead { attempts }
            }
        };
        tx.commit().await.map_err(db("commit fail"))?;
        Ok(outcome)
    }

    async fn defer_once(
        &self,
        id: i64,
        worker_id: &str,
        run_at_ms: i64,
        reason: &str,
        config: &QueueConfig,
        now_ms: i64,
    ) -> Result<DeferOutcome, QueueError> {
        const OP: &str = "defer job";
        let mut tx = self.begin_write("begin defer").await?;
        let row = sqlx::query(HELD_FOR_DEFER)
            .bind(id)
            .bind(worker_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(OP))?;
        let Some(row) = row else {
            return Ok(DeferOutcome::NotHeld);
        };
        let cancel = cancel_flag(&row, OP)?;
        let cancel_reason: Option<String> = row.try_get("cancel_reason").map_err(db(OP))?;
        let deferrals: i64 = row.try_get("deferrals").map_err(db(OP))?;
        let since: Option<i64> = row.try_get("deferred_since_ms").map_err(db(OP))?;
        let outcome = if cancel {
            let state = cancel_state(id, cancel_reason.as_deref())?;
            finish_with_error(&mut tx, id, state, reason, now_ms).await?;
            DeferOutcome::Canceled { state }
        } else if let Some(limit) = deferral_limit(config, deferrals, since, run_at_ms, now_ms) {
            // Nothing written (dropping `tx` rolls back): the worker still holds the job, to
            // conclude it.
            return Ok(limit);
        } else {
            let deferrals = sqlx::query(DEFER)
                .bind(id)
                .bind(run_at_ms)
                .bind(reason)
                .bind(now_ms)
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get("deferrals"))
                .map_err(db(OP))?;
            DeferOutcome::Deferred {
                run_at_ms,
                deferrals,
            }
        };
        tx.commit().await.map_err(db("commit defer"))?;
        Ok(outcome)
    }
        pub(super) async fn delivery_seen(
            &self,
            forge: &str,
            delivery_id: &str,
        ) -> Result<bool, QueueError> {
            let row = sqlx::query(DELIVERY_SEEN)
                .bind(forge)
                .bind(delivery_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("look up delivery"))?;
            Ok(row.is_some())
        }

        pub(super) async fn heartbeat(
            &self,
            id: i64,
            worker_id: &str,
            lease_until: i64,
            now_ms: i64,
        ) -> Result<Heartbeat, QueueError> {
            let row = sqlx::query(HEARTBEAT)
                .bind(id)
                .bind(worker_id)
                .bind(lease_until)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("heartbeat"))?;
            match row {
                None => Ok(Heartbeat {
                    held: false,
                    cancel_requested: false,
                }),
                Some(row) => Ok(Heartbeat {
                    held: true,
                    cancel_requested: cancel_flag(&row, "heartbeat")?,
                }),
            }
        }
        pub(super) async fn record_delivery(
            &self,
            forge: &str,
            delivery_id: &str,
            now_ms: i64,
        ) -> Result<bool, QueueError> {
            let result = sqlx::query(RECORD_DELIVERY)
                .bind(forge)
                .bind(delivery_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db("record delivery"))?;
            Ok(result.rows_affected() == 1)
        }
        pub(super) async fn complete(
            &self,
            id: i64,
            worker_id: &str,
            now_ms: i64,
        ) -> Result<bool, QueueError> {
            let result = sqlx::query(COMPLETE)
                .bind(id)
                .bind(worker_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db("complete job"))?;
            Ok(result.rows_affected() == 1)
        }
        pub(super) async fn release(
            &self,
            id: i64,
            worker_id: &str,
            now_ms: i64,
        ) -> Result<bool, QueueError> {
            let result = sqlx::query(RELEASE)
                .bind(id)
                .bind(worker_id)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db("release job"))?;
            Ok(result.rows_affected() == 1)
        }
        pub(super) async fn remember_pr_head(
            &self,
            forge: &str,
            repo_id: i64,
            head_sha: &str,
            pr_number: i64,
            now_ms: i64,
        ) -> Result<(), QueueError> {
            sqlx::query(REMEMBER_PR_HEAD)
                .bind(forge)
                .bind(repo_id)
                .bind(head_sha)
                .bind(pr_number)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db("remember PR head"))?;
            Ok(())
        }
        pub(super) async fn prs_for_head(
            &self,
            forge: &str,
            repo_id: i64,
            head_sha: &str,
        ) -> Result<Vec<i64>, QueueError> {
            let rows = sqlx::query(PRS_FOR_HEAD)
                .bind(forge)
                .bind(repo_id)
                .bind(head_sha)
                .fetch_all(&self.pool)
                .await
                .map_err(db("look up PR head"))?;
            rows.iter()
                .map(|row| row.try_get("pr_number"))
                .collect::<Result<_, _>>()
                .map_err(db("look up PR head"))
        }
        pub(super) async fn stats(&self, now_ms: i64) -> Result<QueueStats, QueueError> {
            let row = sqlx::query(STATS)
                .bind(now_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(db("stats"))?;
            let get = |column: &str| row.try_get::<i64, _>(column).map_err(db("stats"));
            let oldest: Option<i64> = row.try_get("oldest_runnable_since").map_err(db("stats"))?;
            Ok(QueueStats {
                queued: get("queued")?,
                running: get("running")?,
                dead: get("dead")?,
                oldest_queued_age_ms: oldest.map(|since| now_ms.saturating_sub(since).max(0)),
            })
        }
        pub(super) async fn get(&self, id: i64) -> Result<Option<Job>, QueueError> {
            let row = sqlx::query(GET_JOB)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("get job"))?;
            row.as_ref().map(job_from_row).transpose()
        }
        pub(super) async fn retry_dead(&self, id: i64, now_ms: i64) -> Result<bool, QueueError> {
            let result = sqlx::query(RETRY_DEAD)
                .bind(id)
                .bind(now_ms)
                .execute(&self.pool)
                .await
                .map_err(db("retry dead job"))?;
            Ok(result.rows_affected() == 1)
        }
        pub(super) async fn prune(&self, before_ms: i64) -> Result<PruneOutcome, QueueError> {
            let mut counts = [0u64; 3];
            for (count, statement) in
                counts
                    .iter_mut()
                    .zip([PRUNE_DELIVERIES, PRUNE_JOBS, PRUNE_PR_HEADS])
            {
                *count = sqlx::query(statement)
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await
                    .map_err(db("prune"))?
                    .rows_affected();
            }
            let [deliveries, jobs, pr_heads] = counts;
            Ok(PruneOutcome {
                deliveries,
                jobs,
                pr_heads,
            })
        }
    };
}
pub(super) use shared_operations;

/// The free functions both backends share, over `$db`'s transactions: finishing a failed job
/// and inserting one (with its superseding), as one body.
macro_rules! shared_functions {
    ($db:ty) => {
        async fn finish_with_error(
            tx: &mut sqlx::Transaction<'static, $db>,
            id: i64,
            state: JobState,
            error: &str,
            now_ms: i64,
        ) -> Result<(), QueueError> {
            sqlx::query(FINISH_WITH_ERROR)
                .bind(id)
                .bind(state.as_str())
                .bind(error)
                .bind(now_ms)
                .execute(&mut **tx)
                .await
                .map_err(db("fail job"))?;
            Ok(())
        }
        /// Inserts `job` inside `tx`, superseding older work of its PR first if asked. On PostgreSQL the caller holds the
        /// PR's lock (`lock_prs`).
        async fn enqueue_in(
            tx: &mut sqlx::Transaction<'static, $db>,
            job: &NewJob,
            payload: &str,
            now_ms: i64,
        ) -> Result<EnqueueOutcome, QueueError> {
            // A job for a pull request at a head remembers that head, in the same transaction: a
            // re-requested check on a fork PR names only the head.
            if let (Some(pr_number), Some(head_sha)) = (job.pr_number, job.head_sha.as_deref()) {
                sqlx::query(REMEMBER_PR_HEAD)
                    .bind(job.forge.as_str())
                    .bind(job.repo_id)
                    .bind(head_sha)
                    .bind(pr_number)
                    .bind(now_ms)
                    .execute(&mut **tx)
                    .await
                    .map_err(db("remember PR head"))?;
            }
            let mut superseded = Vec::new();
            let mut cancel_requested = Vec::new();
            if let (true, Some(pr_number)) = (job.supersedes, job.pr_number) {
                for (statement, ids) in [
                    (SUPERSEDE_QUEUED, &mut superseded),
                    (SUPERSEDE_RUNNING, &mut cancel_requested),
                ] {
                    let rows = sqlx::query(statement)
                        .bind(job.forge.as_str())
                        .bind(job.repo_id)
                        .bind(pr_number)
                        .bind(now_ms)
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(db("supersede jobs"))?;
                    *ids = ids_of(&rows).map_err(db("supersede jobs"))?;
                }
            }
            let id = sqlx::query(INSERT_JOB)
                .bind(job.kind.as_str())
                .bind(job.forge.as_str())
                .bind(job.installation_id)
                .bind(job.repo_id)
                .bind(job.pr_number)
                .bind(job.head_sha.as_deref())
                .bind(payload)
                // No run_at: runnable under any clock a caller passes to `claim` (tests use fake
                // ones), so not the wall clock here.
                .bind(job.run_at_ms.unwrap_or(0))
                .bind(now_ms)
                .fetch_one(&mut **tx)
                .await
                .and_then(|row| row.try_get("id"))
                .map_err(db("enqueue job"))?;
            if !superseded.is_empty() || !cancel_requested.is_empty() {
                tracing::debug!(
                    id,
                    ?superseded,
                    ?cancel_requested,
                    "job supersedes older work"
                );
            }
            Ok(EnqueueOutcome {
                id,
                superseded,
                cancel_requested,
            })
        }
    };
}
pub(super) use shared_functions;
