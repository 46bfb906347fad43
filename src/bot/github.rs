//! What a worker does with a GitHub job: fetch, review, publish, and always conclude the check.

use std::sync::Arc;

use serde_json::{Value, json};

use super::job::{JobSpec, RepoRef};
use super::runner::{BotError, BoxFuture, Cancel, JobOutcome, JobRunner, ReviewFailure};
use crate::forge::github::api::{ApiError, ApiRequest, GitHubApi, repo_path};
use crate::forge::github::publish::{
    Outcome, Target, can_write, conclude_unfinished_checks, finish_check, publish, scan_key,
    start_check,
};
use crate::git::cache::{AbandonOnDrop, CacheKey, FetchBudget, FetchRequest, GitCache};
use crate::owners::Flavor;
use crate::pipeline::{PipelineError, ReviewOptions, Revisions, review};

/// Where to fetch a repository from, and with which credentials.
pub trait GitAccess: Send + Sync {
    /// The clone URL, from the configured git base URL and the repository's names only.
    fn url(&self, repo: &RepoRef) -> String;
    /// `(user, password)` for git over HTTPS, if the server needs any.
    fn credentials(
        &self,
        installation: u64,
    ) -> BoxFuture<'_, Result<Option<(String, String)>, ApiError>>;
}

#[derive(Debug, Clone)]
pub struct BotSettings {
    /// Our own login: comments by anyone else are never treated as ours.
    pub bot_login: String,
    pub review_drafts: bool,
    /// Per job: bytes a fetch may receive.
    pub max_fetch_bytes: u64,
    /// Per job: changed files beyond which the review is skipped (neutral).
    pub max_changed_files: usize,
    /// Shallow fetch depth; deepened to the merge-base when needed.
    pub fetch_depth: i32,
    /// The forge host, part of the cache key.
    pub host: String,
    /// Link from the check run to the service.
    pub details_url: Option<String>,
    /// Wall time for fetching and reviewing; past it the check concludes neutral, saying so.
    pub review_time_limit: std::time::Duration,
    /// Check-run annotations per run; the check's summary counts the rest.
    pub max_annotations: usize,
}

pub struct GitHubWorker {
    pub api: Arc<dyn GitHubApi>,
    pub git: Arc<dyn GitAccess>,
    pub cache: Arc<GitCache>,
    pub settings: BotSettings,
}

fn job_spec(payload: &Value) -> Result<JobSpec, BotError> {
    serde_json::from_value(payload.clone())
        .map_err(|e| BotError::Review(format!("unreadable job payload: {e}")))
}

impl JobRunner for GitHubWorker {
    fn run_job<'a>(
        &'a self,
        payload: &'a Value,
        cancel: &'a Cancel,
        last_attempt: bool,
    ) -> BoxFuture<'a, Result<JobOutcome, BotError>> {
        Box::pin(async move {
            let spec = job_spec(payload)?;
            self.run(&spec, cancel, last_attempt).await
        })
    }

    fn conclude_abandoned<'a>(
        &'a self,
        payload: &'a Value,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BotError>> {
        Box::pin(async move {
            let spec = job_spec(payload)?;
            self.fail_unfinished_checks(&spec, reason).await
        })
    }
}

const HELP: &str = "kubeward reviews the Kubernetes manifests this pull request changes.\n\n\
- `/kubeward rescan`: review again (people with write access).\n\
- `/kubeward help`: this message.\n\n\
Findings are reported only for what the change introduced; the check run summarises them by \
CODEOWNERS owner. Policy comes from `.kubeward.yaml` on the base branch.";

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

impl GitHubWorker {
    /// Fails the unfinished check runs of the heads a job was about: a review or command
    /// reviews its pull request's current head; a re-request names its head.
    async fn fail_unfinished_checks(&self, spec: &JobSpec, reason: &str) -> Result<(), BotError> {
        // The heads whose checks the job may have opened: the one it was queued for and, as it
        // reviews the pull request as it is, the current one.
        let (installation, repo, number, mut heads) = match spec {
            JobSpec::Review {
                installation,
                repo,
                number,
                head_sha,
                ..
            } => (*installation, repo, *number, vec![head_sha.clone()]),
            JobSpec::Command {
                installation,
                repo,
                number,
                ..
            } => (*installation, repo, *number, Vec::new()),
            JobSpec::Rerequest {
                installation,
                repo,
                head_sha,
                pull_numbers,
            } => {
                let number = pull_numbers.first().copied().unwrap_or(0);
                (*installation, repo, number, vec![head_sha.clone()])
            }
        };
        if !matches!(spec, JobSpec::Rerequest { .. }) {
            let path = repo_path(&repo.owner, &repo.name, &format!("/pulls/{number}"));
            let pull = self
                .api
                .call(installation, ApiRequest::get(path))
                .await?
                .body;
            heads.extend(str_at(&pull, &["head", "sha"]).map(str::to_owned));
        }
        heads.retain(|head| !head.is_empty());
        heads.dedup();
        let summary = format!(
            "kubeward gave this review up: {reason}. Push again or comment `/kubeward rescan` to retry."
        );
        let title = "kubeward could not finish this review";
        for head_sha in heads {
            let target = self.target(installation, repo, number, head_sha);
            let concluded = conclude_unfinished_checks(
                self.api.as_ref(),
                &target,
                Outcome::Failure,
                title,
                &summary,
            )
            .await?;
            tracing::info!(concluded, head = %target.head_sha, "the check runs a given-up job left unfinished");
        }
        Ok(())
    }

    fn target(&self, installation: u64, repo: &RepoRef, number: u64, head_sha: String) -> Target {
        Target {
            installation,
            owner: repo.owner.clone(),
            repo: repo.name.clone(),
            number,
            head_sha,
            bot_login: self.settings.bot_login.clone(),
        }
    }

    /// Concludes `cancelled` what is still open on the head a push replaced: a review of it
    /// may have been superseded after it started (released at a shutdown, say) and never
    /// resumed. Best effort: the new head's review goes on regardless.
    async fn cancel_replaced_head(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        previous_head: &str,
    ) {
        let target = self.target(installation, repo, number, previous_head.to_owned());
        let cancelled = conclude_unfinished_checks(
            self.api.as_ref(),
            &target,
            Outcome::Cancelled,
            "Superseded",
            "A newer push superseded this review.",
        )
        .await;
        match cancelled {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(cancelled = n, head = %previous_head, "concluded the replaced head's open check runs")
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot conclude the replaced head's open check runs")
            }
        }
    }

    pub async fn run(
        &self,
        spec: &JobSpec,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        match spec {
            JobSpec::Review {
                installation,
                repo,
                number,
                head_sha,
                new_check_run,
                previous_head,
                ..
            } => {
                if let Some(previous) = previous_head.as_ref().filter(|p| *p != head_sha) {
                    self.cancel_replaced_head(*installation, repo, *number, previous)
                        .await;
                }
                self.review(
                    *installation,
                    repo,
                    *number,
                    Some(head_sha),
                    *new_check_run,
                    cancel,
                    last_attempt,
                )
                .await
            }
            JobSpec::Command {
                installation,
                repo,
                number,
                comment_id,
                login,
                command,
            } => {
                self.command(
                    *installation,
                    repo,
                    *number,
                    *comment_id,
                    login,
                    command,
                    cancel,
                    last_attempt,
                )
                .await
            }
            JobSpec::Rerequest {
                installation,
                repo,
                head_sha,
                pull_numbers,
            } => {
                // Queued as one pull request's work: run it.
                if let [number] = pull_numbers.as_slice() {
                    return self
                        .review(
                            *installation,
                            repo,
                            *number,
                            Some(head_sha),
                            true,
                            cancel,
                            last_attempt,
                        )
                        .await;
                }
                let numbers = if pull_numbers.is_empty() {
                    self.pulls_with_head(*installation, repo, head_sha).await?
                } else {
                    pull_numbers.clone()
                };
                if numbers.is_empty() {
                    return Ok(JobOutcome::Skipped(format!(
                        "no open pull request has head {head_sha}"
                    )));
                }
                // One job per pull request, serialised with (and superseded by) its work.
                let jobs = numbers
                    .iter()
                    .map(|n| {
                        JobSpec::Rerequest {
                            installation: *installation,
                            repo: repo.clone(),
                            head_sha: head_sha.clone(),
                            pull_numbers: vec![*n],
                        }
                        .to_new_job(super::job::FORGE_GITHUB)
                    })
                    .collect();
                Ok(JobOutcome::HandOff {
                    jobs,
                    why: format!("head {head_sha} is the head of pull request(s) {numbers:?}"),
                })
            }
        }
    }

    /// The open pull requests whose head is `head_sha`. GitHub's commit-to-PR lookup
    /// (`/commits/{sha}/pulls`) finds nothing for a fork's head, whose commit the base
    /// repository only holds under `refs/pull/N/head`, so the open pull requests are listed.
    async fn pulls_with_head(
        &self,
        installation: u64,
        repo: &RepoRef,
        head_sha: &str,
    ) -> Result<Vec<u64>, BotError> {
        let pulls = crate::forge::github::api::list_all(
            self.api.as_ref(),
            installation,
            &repo_path(&repo.owner, &repo.name, "/pulls?state=open"),
            None,
        )
        .await?;
        Ok(pulls
            .iter()
            .filter(|p| str_at(p, &["head", "sha"]) == Some(head_sha))
            .filter_map(|p| p.get("number").and_then(Value::as_u64))
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    async fn command(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        comment_id: u64,
        login: &str,
        command: &str,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        let path = repo_path(
            &repo.owner,
            &repo.name,
            &format!(
                "/collaborators/{}/permission",
                crate::forge::github::api::segment(login)
            ),
        );
        let permission = self.api.call(installation, ApiRequest::get(path)).await?;
        if !can_write(&permission.body) {
            return Ok(JobOutcome::Skipped(format!(
                "{login} may not run commands here"
            )));
        }
        match command {
            "help" => {
                let marker = format!("<!-- kubeward:help reply-to={comment_id} -->");
                let comments_path = repo_path(
                    &repo.owner,
                    &repo.name,
                    &format!("/issues/{number}/comments"),
                );
                let existing = crate::forge::github::api::list_all(
                    self.api.as_ref(),
                    installation,
                    &comments_path,
                    None,
                )
                .await?;
                let answered = existing.iter().any(|c| {
                    str_at(c, &["user", "login"]) == Some(self.settings.bot_login.as_str())
                        && c.get("body")
                            .and_then(Value::as_str)
                            .is_some_and(|b| b.contains(&marker))
                });
                if !answered {
                    self.api
                        .call(
                            installation,
                            ApiRequest::post(
                                comments_path,
                                json!({"body": format!("{HELP}\n\n{marker}\n")}),
                            ),
                        )
                        .await?;
                }
                Ok(JobOutcome::Skipped("help answered".into()))
            }
            _ => {
                self.review(
                    installation,
                    repo,
                    number,
                    None,
                    false,
                    cancel,
                    last_attempt,
                )
                .await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn review(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        expected_head: Option<&String>,
        new_check_run: bool,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        let pull = self
            .api
            .call(
                installation,
                ApiRequest::get(repo_path(
                    &repo.owner,
                    &repo.name,
                    &format!("/pulls/{number}"),
                )),
            )
            .await?
            .body;
        if pull.get("state").and_then(Value::as_str) != Some("open") {
            return Ok(JobOutcome::Skipped("the pull request is closed".into()));
        }
        // Deliveries can arrive out of order, so a job may be older or newer than the pull
        // request it names: review what the pull request is now.
        let head_sha = str_at(&pull, &["head", "sha"]).unwrap_or("").to_owned();
        if let Some(expected) = expected_head.filter(|h| **h != head_sha) {
            tracing::info!(job_head = %expected, current_head = %head_sha, "reviewing the current head");
        }
        let base_sha = str_at(&pull, &["base", "sha"]).unwrap_or("").to_owned();
        let target = self.target(installation, repo, number, head_sha.clone());
        // The merge-base from GitHub: exact even when our history is shallow.
        let compare = self
            .api
            .call(
                installation,
                ApiRequest::get(repo_path(
                    &repo.owner,
                    &repo.name,
                    &format!("/compare/{base_sha}...{head_sha}"),
                )),
            )
            .await?
            .body;
        // Never approximated by the base tip: later commits on the base branch would look
        // reverted by the pull request.
        let Some(merge_base) = str_at(&compare, &["merge_base_commit", "sha"])
            .filter(|sha| !sha.is_empty())
            .map(str::to_owned)
        else {
            let scan = scan_key(&head_sha, "no-merge-base");
            let check = start_check(self.api.as_ref(), &target, &scan, new_check_run).await?;
            finish_check(self.api.as_ref(), &target, check, Outcome::Failure, "No merge base", "GitHub's comparison of the base and head commits names no merge base (unrelated histories?), so kubeward cannot tell what this pull request changed.").await?;
            return Ok(JobOutcome::Published {
                conclusion: "failure".into(),
                published_id: check,
            });
        };
        let scan = scan_key(&head_sha, &merge_base);
        let check = start_check(self.api.as_ref(), &target, &scan, new_check_run).await?;
        // Whatever happens from here on, the check run is concluded: a review that fails for
        // good or outruns its time limit must not leave a required check pending forever.
        let work = async {
            if pull.get("draft").and_then(Value::as_bool) == Some(true)
                && !self.settings.review_drafts
            {
                finish_check(self.api.as_ref(), &target, check, Outcome::Neutral, "Draft: not reviewed", "This pull request is a draft; kubeward reviews it when it is marked ready for review.").await?;
                return Ok(JobOutcome::Published {
                    conclusion: "neutral".into(),
                    published_id: check,
                });
            }
            // The limit covers fetching and reviewing, not publishing: once there is a plan,
            // the check says its conclusion, never a neutral that required checks let pass.
            let reviewed = tokio::time::timeout(
                self.settings.review_time_limit,
                self.fetch_and_review(
                    installation,
                    repo,
                    number,
                    &base_sha,
                    &head_sha,
                    &merge_base,
                ),
            )
            .await;
            let Ok(reviewed) = reviewed else {
                let summary = format!(
                    "The review did not finish within its time limit ({} s); push again or comment `/kubeward rescan` to retry.",
                    self.settings.review_time_limit.as_secs()
                );
                finish_check(
                    self.api.as_ref(),
                    &target,
                    check,
                    Outcome::Neutral,
                    "Time limit reached",
                    &summary,
                )
                .await?;
                return Ok(JobOutcome::Published {
                    conclusion: "neutral".into(),
                    published_id: check,
                });
            };
            match reviewed {
                Ok(plan) => {
                    if cancel.is_cancelled() {
                        finish_check(
                            self.api.as_ref(),
                            &target,
                            check,
                            Outcome::Cancelled,
                            "Superseded",
                            "A newer push or a closed pull request superseded this review.",
                        )
                        .await?;
                        return Ok(JobOutcome::Skipped("cancelled".into()));
                    }
                    let publish_started = std::time::Instant::now();
                    let cap = self.settings.max_annotations;
                    publish(self.api.as_ref(), &target, &plan, check, cap).await?;
                    stage("publish", publish_started.elapsed());
                    let conclusion = match plan.conclusion {
                        crate::review::Conclusion::Success => "success",
                        crate::review::Conclusion::Failure => "failure",
                    };
                    Ok(JobOutcome::Published {
                        conclusion: conclusion.into(),
                        published_id: check,
                    })
                }
                Err(ReviewFailure::Config(message)) => {
                    finish_check(
                        self.api.as_ref(),
                        &target,
                        check,
                        Outcome::Failure,
                        "Invalid kubeward configuration",
                        &format!(
                            "The policy on the base branch cannot be read:\n\n```\n{message}\n```"
                        ),
                    )
                    .await?;
                    Ok(JobOutcome::Published {
                        conclusion: "failure".into(),
                        published_id: check,
                    })
                }
                Err(ReviewFailure::TooLarge(message)) => {
                    finish_check(
                        self.api.as_ref(),
                        &target,
                        check,
                        Outcome::Neutral,
                        "Too large to review",
                        &message,
                    )
                    .await?;
                    Ok(JobOutcome::Published {
                        conclusion: "neutral".into(),
                        published_id: check,
                    })
                }
                // Concluded below, on the last attempt.
                Err(ReviewFailure::Other(message)) => Err(BotError::Review(message)),
            }
        };
        match work.await {
            // Only waiting for the write budget: the job is deferred, not failed, and the
            // check stays as it is (publishing concluded it already if it got that far).
            Err(error) if error.retry_after().is_some() => Err(error),
            // Said as a failure: never neutral, which a required check counts as passing.
            // Before the last attempt the retry's result replaces it; should a newer push
            // supersede the retry, the old head's check is not left in progress.
            Err(error) => {
                let (title, will) = match last_attempt {
                    true => (
                        "kubeward could not review this change",
                        "will not be retried",
                    ),
                    false => ("kubeward hit an error; retrying", "will be retried"),
                };
                let summary = format!("The review failed and {will}:\n\n```\n{error}\n```");
                if let Err(e) = finish_check(
                    self.api.as_ref(),
                    &target,
                    check,
                    Outcome::Failure,
                    title,
                    &summary,
                )
                .await
                {
                    tracing::warn!(error = %e, "cannot conclude the check run of a failed review");
                }
                Err(error)
            }
            Ok(outcome) => Ok(outcome),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch_and_review(
        &self,
        installation: u64,
        repo: &RepoRef,
        number: u64,
        base_sha: &str,
        head_sha: &str,
        merge_base: &str,
    ) -> Result<crate::review::ReviewPlan, ReviewFailure> {
        let credentials = self
            .git
            .credentials(installation)
            .await
            .map_err(|e| ReviewFailure::Other(e.to_string()))?;
        let url = self.git.url(repo);
        let key = CacheKey {
            forge: "github".into(),
            host: self.settings.host.clone(),
            repo_id: repo.id,
        };
        let cache = self.cache.clone();
        let settings = self.settings.clone();
        let (base_sha, head_sha, merge_base) = (
            base_sha.to_owned(),
            head_sha.to_owned(),
            merge_base.to_owned(),
        );
        let _slot = super::runner::review_slot().await;
        let budget = Arc::new(FetchBudget::new(settings.max_fetch_bytes));
        // Dropped with this future when the job's time limit passes: its fetch stops.
        let _abandon = AbandonOnDrop(budget.clone());
        tokio::task::spawn_blocking(move || {
            let cached = cache
                .open(&key)
                .map_err(|e| ReviewFailure::Other(e.to_string()))?;
            // The base by its commit, not its branch name: any name git allows works, and
            // the tip is the one GitHub named for this pull request.
            let base_oid = git2::Oid::from_str(&base_sha)
                .map_err(|e| ReviewFailure::Other(format!("base commit {base_sha:?}: {e}")))?;
            let refspecs = vec![
                format!("+refs/pull/{number}/head:refs/kubeward/pull/{number}/head"),
                format!("+{base_oid}:refs/kubeward/pull/{number}/base"),
            ];
            let creds = credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
            let fetch = |specs: &[String], depth: Option<i32>| {
                cached.fetch(&FetchRequest {
                    url: &url,
                    refspecs: specs,
                    credentials: creds,
                    depth,
                    budget: &budget,
                })
            };
            // Shallow fetches are a smart-protocol feature; local paths (testdrive) get it all.
            let depth = url.starts_with("http").then_some(settings.fetch_depth);
            let fetch_started = std::time::Instant::now();
            fetch(&refspecs, depth).map_err(ReviewFailure::from_fetch)?;
            let has = |sha: &str| {
                git2::Oid::from_str(sha)
                    .ok()
                    .is_some_and(|oid| cached.repo.inner().find_commit(oid).is_ok())
            };
            // The merge-base may lie below the shallow boundary: fetch exactly that commit.
            if !has(&merge_base) {
                let spec = vec![format!("+{merge_base}:refs/kubeward/merge-base")];
                fetch(&spec, depth.map(|_| 1)).map_err(ReviewFailure::from_fetch)?;
            }
            stage("fetch", fetch_started.elapsed());
            for sha in [&head_sha, &merge_base] {
                if !has(sha) {
                    return Err(ReviewFailure::Other(format!(
                        "commit {sha} is not in the fetched history"
                    )));
                }
            }
            let oid = |sha: &str| {
                git2::Oid::from_str(sha).map_err(|e| ReviewFailure::Other(e.to_string()))
            };
            let base_tip = if has(&base_sha) {
                oid(&base_sha)?
            } else {
                oid(&merge_base)?
            };
            let revisions = Revisions {
                merge_base: oid(&merge_base)?,
                head: oid(&head_sha)?,
                base_tip,
            };
            let changed = cached
                .repo
                .changes(revisions.merge_base, revisions.head, u64::MAX)
                .map_err(|e| ReviewFailure::Other(e.to_string()))?
                .len();
            if changed > settings.max_changed_files {
                return Err(ReviewFailure::TooLarge(format!(
                    "This change touches {changed} files; kubeward reviews at most {}.",
                    settings.max_changed_files
                )));
            }
            match review(
                &cached.repo,
                &revisions,
                &ReviewOptions {
                    forge: Flavor::GitHub,
                    config_override: None,
                    fail_on: None,
                },
            ) {
                Ok((plan, timings)) => {
                    stage("diff", timings.git);
                    stage("parse", timings.parse);
                    stage("audit", timings.audit);
                    stage("plan", timings.plan);
                    Ok(plan)
                }
                Err(PipelineError::Config(e)) => Err(ReviewFailure::Config(e.to_string())),
                Err(e) => Err(ReviewFailure::Other(e.to_string())),
            }
        })
        .await
        .map_err(|e| ReviewFailure::Other(format!("the review task failed: {e}")))?
    }
}

/// Records how long a stage of a review took.
fn stage(name: &'static str, elapsed: std::time::Duration) {
    metrics::histogram!("kubeward_job_duration_seconds", "stage" => name)
        .record(elapsed.as_secs_f64());
}
